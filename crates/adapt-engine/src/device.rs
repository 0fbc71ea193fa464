//! What the engine runs on: the MLX backend (Metal, CUDA or CPU), the device chosen at start
//! ([`choose_device`]: the GPU if it works, else the CPU, and why), the machine's memory as
//! `sysinfo` reports it, and MLX's own allocator counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use mlx_rs::error::Exception;
use mlx_rs::{Array, Device, Stream};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// Whether `ADAPT_TRACE=1` asks generation and training to print where their time went (the
/// host building graphs against waiting for the device) to standard error.
pub fn trace_requested() -> bool {
    std::env::var("ADAPT_TRACE").as_deref() == Ok("1")
}

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
    /// The backend the engine computes on: the runtime's ([`Backend::runtime`]) unless
    /// [`choose_device`] put the engine on the CPU.
    pub fn detect() -> Backend {
        if ON_CPU.load(Ordering::Relaxed) {
            Backend::Cpu
        } else {
            Backend::runtime()
        }
    }

    /// The accelerated backend the loaded MLX runtime was built with, if any.
    pub fn runtime() -> Backend {
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

/// Set when the engine runs on the CPU of a runtime that has a GPU backend.
static ON_CPU: AtomicBool = AtomicBool::new(false);

/// The last choice [`choose_device`] made in this process.
static CHOSEN: Mutex<Option<DeviceChoice>> = Mutex::new(None);

/// Where the engine is asked to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DevicePreference {
    /// The GPU if it works, else the CPU (saying why).
    #[default]
    Auto,
    /// The GPU or nothing: starting fails with the cause when it cannot be used.
    Gpu,
    /// The CPU, even where a GPU works.
    Cpu,
}

impl DevicePreference {
    /// The name as flags and settings spell it.
    pub fn name(self) -> &'static str {
        match self {
            DevicePreference::Auto => "auto",
            DevicePreference::Gpu => "gpu",
            DevicePreference::Cpu => "cpu",
        }
    }
}

impl std::str::FromStr for DevicePreference {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<DevicePreference, String> {
        let all = [
            DevicePreference::Auto,
            DevicePreference::Gpu,
            DevicePreference::Cpu,
        ];
        all.into_iter()
            .find(|d| d.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("'{s}' is not a device; use auto, gpu or cpu"))
    }
}

/// The device the engine runs on and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceChoice {
    /// What was asked for.
    pub asked: DevicePreference,
    /// What computes: a GPU backend or the CPU.
    pub backend: Backend,
    /// Why this device, in words (the GPU's error when it could not be used).
    pub reason: String,
    /// `auto` found no usable GPU (none in the runtime, or it failed), so the CPU runs.
    pub fell_back: bool,
}

/// Chooses the device the engine computes on and makes it MLX's default: `auto` probes the
/// GPU (the runtime has a GPU backend and a small computation on it gives the right answer)
/// and falls back to the CPU with the cause; `gpu` fails with the cause instead; `cpu` takes
/// the CPU. Call it on the thread that owns MLX state, before any model is loaded.
pub fn choose_device(asked: DevicePreference) -> Result<DeviceChoice> {
    let runtime = Backend::runtime();
    let choice = match asked {
        DevicePreference::Cpu => DeviceChoice {
            asked,
            backend: Backend::Cpu,
            reason: "the CPU was asked for".into(),
            fell_back: false,
        },
        DevicePreference::Gpu | DevicePreference::Auto => match probe_gpu(runtime) {
            Ok(()) => DeviceChoice {
                asked,
                backend: runtime,
                reason: format!("the {runtime} backend ran a test computation"),
                fell_back: false,
            },
            // Measured on the CUDA runtime with every device hidden: the first allocation,
            // even of a CPU array, fails in cudaMallocManaged.
            Err(cause) if runtime == Backend::Cuda => {
                return Err(EngineError::NoDeviceForRuntime { cause });
            }
            Err(cause) if asked == DevicePreference::Gpu => {
                return Err(EngineError::GpuUnavailable { cause });
            }
            Err(cause) => DeviceChoice {
                asked,
                backend: Backend::Cpu,
                reason: cause,
                fell_back: true,
            },
        },
    };
    let on_cpu = choice.backend == Backend::Cpu;
    Device::set_default(&if on_cpu { Device::cpu() } else { Device::gpu() });
    ON_CPU.store(on_cpu && runtime.is_gpu(), Ordering::Relaxed);
    *CHOSEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(choice.clone());
    Ok(choice)
}

/// The device [`choose_device`] chose last, if it ran.
pub fn chosen_device() -> Option<DeviceChoice> {
    CHOSEN.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Whether the GPU of `runtime` can be used, or the cause in words.
fn probe_gpu(runtime: Backend) -> std::result::Result<(), String> {
    if !runtime.is_gpu() {
        // A program started again on the CPU runtime (see `runtime`) says why it was.
        if let Some(cause) = std::env::var(crate::runtime::RESTARTED_ENV)
            .ok()
            .filter(|c| !c.trim().is_empty())
        {
            let place = crate::runtime::loaded_library()
                .and_then(|l| l.parent().map(|d| format!(" in {}", d.display())))
                .unwrap_or_default();
            return Err(format!(
                "{cause}; started again on MLX's CPU runtime{place}"
            ));
        }
        return Err("no GPU backend in this MLX runtime (it is MLX's CPU build)".into());
    }
    let hint = match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) if runtime == Backend::Cuda && (v.trim().is_empty() || v.trim() == "-1") => {
            format!(" (CUDA_VISIBLE_DEVICES={v:?} hides every device)")
        }
        _ => String::new(),
    };
    // MLX reports a failing device as an error code through mlx-c; a panic on the way is
    // kept from the caller too.
    match std::panic::catch_unwind(gpu_test_computation) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{runtime}: {}{hint}", without_source(e.what()))),
        Err(_) => Err(format!(
            "{runtime}: the test computation on the GPU failed{hint}"
        )),
    }
}

/// MLX's message without the " at <source file>:<line>" mlx-c appends.
fn without_source(message: &str) -> &str {
    match message.rsplit_once(" at ") {
        Some((text, place))
            if place
                .rsplit_once(':')
                .is_some_and(|(_, l)| l.parse::<u32>().is_ok()) =>
        {
            text
        }
        _ => message,
    }
}

/// Squares a small vector on the GPU's stream and checks the answer.
fn gpu_test_computation() -> std::result::Result<(), Exception> {
    let stream = Stream::try_default_on_device(&Device::gpu())?;
    let x = Array::from_slice(&[1.0f32, 2.0, 3.0], &[3]);
    let y = mlx_rs::with_stream(&stream, || x.multiply(&x))?;
    y.eval()?;
    let values = y
        .try_as_slice::<f32>()
        .map_err(|e| Exception::custom(e.to_string()))?;
    if values != [1.0, 4.0, 9.0] {
        return Err(Exception::custom(format!(
            "a test computation gave {values:?} instead of [1, 4, 9]"
        )));
    }
    Ok(())
}

/// A snapshot of the device and its memory.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    /// The backend that computes (the CPU when the engine chose it over the runtime's GPU).
    pub backend: Backend,
    /// The accelerated backend the runtime was built with (`Cpu` for MLX's CPU build).
    pub runtime: Backend,
    /// The device chosen at start and why (`None` where no choice was made).
    pub choice: Option<DeviceChoice>,
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
            runtime: Backend::runtime(),
            choice: chosen_device(),
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

    #[test]
    fn device_names_parse() {
        assert_eq!("GPU".parse::<DevicePreference>(), Ok(DevicePreference::Gpu));
        assert_eq!(
            "auto".parse::<DevicePreference>(),
            Ok(DevicePreference::Auto)
        );
        let e = "cuda".parse::<DevicePreference>().unwrap_err();
        assert!(e.contains("use auto, gpu or cpu"), "{e}");
    }

    /// A device that is not there: the test computation on the GPU of a runtime without one
    /// comes back as MLX's error, not as a crash.
    #[test]
    fn a_missing_gpu_is_an_error_not_a_crash() {
        if Backend::runtime().is_gpu() {
            assert_eq!(gpu_test_computation().map_err(|e| e.to_string()), Ok(()));
            return;
        }
        let e = gpu_test_computation().unwrap_err();
        assert_eq!(
            without_source(e.what()),
            "[default_stream] Cannot get gpu stream without gpu backend."
        );
        assert_eq!(without_source("no place"), "no place");
        let x = Array::from_slice(&[3.0f32], &[1]);
        assert_eq!(x.multiply(&x).unwrap().as_slice::<f32>(), [9.0]);
    }

    /// One test for every choice: they set MLX's process-wide default device in turn.
    #[test]
    fn the_device_is_chosen_with_its_reason() {
        let cpu = choose_device(DevicePreference::Cpu).unwrap();
        assert_eq!((cpu.backend, cpu.fell_back), (Backend::Cpu, false));
        assert_eq!(cpu.reason, "the CPU was asked for");
        assert_eq!(Backend::detect(), Backend::Cpu);
        assert_eq!(chosen_device(), Some(cpu));
        let auto = choose_device(DevicePreference::Auto).unwrap();
        let gpu = choose_device(DevicePreference::Gpu);
        if Backend::runtime().is_gpu() {
            // A working GPU (run with the device hidden to see the other branch).
            match gpu {
                Ok(g) => assert_eq!(g.backend, Backend::runtime()),
                Err(e) => assert!(auto.fell_back && e.to_string().contains(&auto.reason)),
            }
        } else {
            assert_eq!((auto.backend, auto.fell_back), (Backend::Cpu, true));
            assert!(auto.reason.contains("no GPU backend"), "{}", auto.reason);
            let e = gpu.unwrap_err();
            assert_eq!(e.code(), "device.gpu_unavailable");
            assert!(e.to_string().contains("no GPU backend"), "{e}");
            // The refusal left the CPU choice in place.
            assert_eq!(chosen_device().unwrap().asked, DevicePreference::Auto);
        }
        let x = Array::from_slice(&[2.0f32], &[1]);
        assert_eq!(x.multiply(&x).unwrap().as_slice::<f32>(), [4.0]);
    }
}
