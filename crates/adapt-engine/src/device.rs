//! What the engine runs on: the MLX backend (Metal, CUDA or CPU), the machine's memory as
//! `sysinfo` reports it, and MLX's own allocator counters.

use serde::Serialize;

use crate::error::Result;

/// The compute backend MLX uses for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Backend {
    /// Apple GPU through Metal (macOS on Apple Silicon).
    Metal,
    /// NVIDIA GPU through CUDA.
    Cuda,
    /// MLX's CPU backend (Linux builds without a GPU runtime).
    Cpu,
}

impl Backend {
    /// Detects the backend of the loaded MLX runtime.
    pub fn detect() -> Backend {
        let mut metal = false;
        let mut cuda = false;
        // SAFETY: both calls only write a bool through a valid pointer; a non-zero return means
        // the query failed, in which case the flag keeps its `false` default.
        unsafe {
            mlx_sys::mlx_metal_is_available(&mut metal);
            mlx_sys::mlx_cuda_is_available(&mut cuda);
        }
        if metal {
            Backend::Metal
        } else if cuda {
            Backend::Cuda
        } else {
            Backend::Cpu
        }
    }

    /// True for the GPU backends, which run quantized and half-precision weights fast.
    pub fn is_gpu(self) -> bool {
        !matches!(self, Backend::Cpu)
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Metal => "Metal (GPU)",
            Backend::Cuda => "CUDA (GPU)",
            Backend::Cpu => "CPU",
        })
    }
}

/// A snapshot of the device and its memory.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    pub backend: Backend,
    pub mlx_version: String,
    pub cpu: String,
    pub cpu_cores: usize,
    /// Total system memory (unified memory on Apple Silicon), bytes.
    pub total_memory: u64,
    /// Memory the OS could give to a new allocation now, bytes.
    pub available_memory: u64,
    /// Bytes currently held by MLX arrays.
    pub mlx_active_memory: u64,
    /// Most bytes MLX arrays held at once since start (or the last reset).
    pub mlx_peak_memory: u64,
    /// Bytes MLX keeps cached for reuse.
    pub mlx_cache_memory: u64,
    /// What MLX says of the GPU it runs on (name, architecture, memory…), empty on the CPU
    /// backend; keys and values as the backend gives them.
    pub gpu: Vec<(String, String)>,
}

impl DeviceReport {
    /// Reads the current state of the device.
    pub fn current() -> Result<DeviceReport> {
        let mut system = sysinfo::System::new();
        system.refresh_memory();
        system.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
        let cpu = system
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Ok(DeviceReport {
            backend: Backend::detect(),
            mlx_version: mlx_version(),
            cpu,
            cpu_cores: system.cpus().len(),
            total_memory: system.total_memory(),
            available_memory: system.available_memory(),
            mlx_active_memory: mlx_rs::memory::active_memory()? as u64,
            mlx_peak_memory: mlx_rs::memory::peak_memory()? as u64,
            mlx_cache_memory: mlx_rs::memory::cache_memory()? as u64,
            gpu: if Backend::detect().is_gpu() {
                gpu_info()
            } else {
                Vec::new()
            },
        })
    }
}

/// The properties MLX reports for GPU 0, as text (sizes in bytes).
fn gpu_info() -> Vec<(String, String)> {
    let mut out = Vec::new();
    // SAFETY: every object is created here, read through the C API's own accessors with
    // valid pointers, and freed before returning; strings are copied out before the info
    // object that owns them is freed.
    unsafe {
        let device = mlx_sys::mlx_device_new_type(mlx_sys::mlx_device_type__MLX_GPU, 0);
        let mut info = mlx_sys::mlx_device_info_new();
        let mut keys = mlx_sys::mlx_vector_string_new();
        if mlx_sys::mlx_device_info_get(&mut info, device) == 0
            && mlx_sys::mlx_device_info_get_keys(&mut keys, info) == 0
        {
            for i in 0..mlx_sys::mlx_vector_string_size(keys) {
                let mut key = std::ptr::null_mut();
                if mlx_sys::mlx_vector_string_get(&mut key, keys, i) != 0 || key.is_null() {
                    continue;
                }
                let name = std::ffi::CStr::from_ptr(key).to_string_lossy().into_owned();
                let mut is_string = false;
                mlx_sys::mlx_device_info_is_string(&mut is_string, info, key);
                let value = if is_string {
                    let mut text = std::ptr::null();
                    (mlx_sys::mlx_device_info_get_string(&mut text, info, key) == 0
                        && !text.is_null())
                    .then(|| {
                        std::ffi::CStr::from_ptr(text)
                            .to_string_lossy()
                            .into_owned()
                    })
                } else {
                    let mut size = 0usize;
                    (mlx_sys::mlx_device_info_get_size(&mut size, info, key) == 0)
                        .then(|| size.to_string())
                };
                if let Some(value) = value {
                    out.push((name, value));
                }
            }
        }
        mlx_sys::mlx_vector_string_free(keys);
        mlx_sys::mlx_device_info_free(info);
        mlx_sys::mlx_device_free(device);
    }
    out.sort();
    out
}

/// MLX's version string, as the loaded runtime reports it.
pub fn mlx_version() -> String {
    // SAFETY: mlx_version fills a freshly created mlx_string that we read and then free.
    unsafe {
        let mut s = mlx_sys::mlx_string_new();
        let version = if mlx_sys::mlx_version(&mut s) == 0 {
            let ptr = mlx_sys::mlx_string_data(s);
            if ptr.is_null() {
                String::from("unknown")
            } else {
                std::ffi::CStr::from_ptr(ptr).to_string_lossy().into_owned()
            }
        } else {
            String::from("unknown")
        };
        mlx_sys::mlx_string_free(s);
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_memory_and_a_version() {
        let report = DeviceReport::current().unwrap();
        assert!(report.total_memory > 0);
        assert!(report.available_memory <= report.total_memory);
        assert!(report.mlx_version.chars().next().unwrap().is_ascii_digit());
    }
}
