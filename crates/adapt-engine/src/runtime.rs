//! Which MLX runtime (`libmlx.so`) this process loaded, and where MLX's CPU runtime is, so a
//! program whose runtime is MLX's CUDA build can start again on the CPU when the GPU cannot be
//! used: that build takes all its memory, the CPU's arrays too, from the CUDA driver, so it
//! cannot compute anywhere without a device.
//!
//! The CPU runtime is looked for, in order: in [`CPU_RUNTIME_ENV`] when set, else in the
//! library search path without the folder of the loaded runtime, then in the program's own
//! RUNPATH (where a build or the Linux package puts MLX's CPU runtime). The dynamic loader
//! prefers `LD_LIBRARY_PATH` to RUNPATH, so a program started again with the found folder first
//! in it loads that runtime. Where nothing here applies (no `/proc/self/maps`, a program that
//! is not ELF) nothing is found and the caller says so.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A folder holding MLX's CPU `libmlx.so` (the `mlx-cpu` wheel's `mlx/lib`), for starting
/// again on the CPU where the loaded runtime is MLX's CUDA build without a usable device.
pub const CPU_RUNTIME_ENV: &str = "ADAPT_CPU_RUNTIME";

/// Set in a program started again on MLX's CPU runtime: why the GPU could not be used.
pub const RESTARTED_ENV: &str = "ADAPT_RESTARTED_ON_CPU";

/// The search-path variable the dynamic loader reads before a program's RUNPATH.
pub const LIBRARY_PATH_ENV: &str = "LD_LIBRARY_PATH";

/// The runtime's file name.
const LIBRARY: &str = "libmlx.so";

/// MLX's CPU runtime, found, and the library search path that makes a new process load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuRuntime {
    /// The folder holding its `libmlx.so`.
    pub dir: PathBuf,
    /// `LD_LIBRARY_PATH` for the new process: `dir` first, then the current entries without
    /// the loaded runtime's folder.
    pub library_path: OsString,
}

/// The `libmlx.so` this process loaded, as the loader mapped it (Linux's `/proc/self/maps`).
pub fn loaded_library() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(PathBuf::from)
        .find(|p| p.file_name() == Some(OsStr::new(LIBRARY)))
}

/// Finds MLX's CPU runtime for this process (see the module's documentation), or says in
/// words where it looked and what to do.
pub fn find_cpu_runtime() -> Result<CpuRuntime, String> {
    let runpath = std::env::current_exe()
        .ok()
        .map(|exe| program_runpath(&exe))
        .unwrap_or_default();
    let explicit = std::env::var_os(CPU_RUNTIME_ENV).filter(|v| !v.is_empty());
    find_cpu_runtime_in(
        loaded_library().as_deref(),
        std::env::var_os(LIBRARY_PATH_ENV).as_deref(),
        explicit.as_deref().map(Path::new),
        &runpath,
    )
}

/// [`find_cpu_runtime`] on given facts: the loaded runtime, the current search path, the
/// folder [`CPU_RUNTIME_ENV`] names and the program's RUNPATH folders.
pub fn find_cpu_runtime_in(
    loaded: Option<&Path>,
    library_path: Option<&OsStr>,
    explicit: Option<&Path>,
    runpath: &[PathBuf],
) -> Result<CpuRuntime, String> {
    let loaded_dir = loaded.and_then(Path::parent).map(same_place);
    let kept: Vec<PathBuf> = library_path
        .map(std::env::split_paths)
        .into_iter()
        .flatten()
        .filter(|d| !d.as_os_str().is_empty() && Some(same_place(d)) != loaded_dir)
        .collect();
    let with = |dir: &Path| -> Result<CpuRuntime, String> {
        let others = kept.iter().filter(|d| same_place(d) != same_place(dir));
        let paths = std::iter::once(dir.to_path_buf()).chain(others.cloned());
        let library_path = std::env::join_paths(paths).map_err(|e| {
            format!(
                "{}: cannot be put in {LIBRARY_PATH_ENV}: {e}",
                dir.display()
            )
        })?;
        Ok(CpuRuntime {
            dir: dir.to_path_buf(),
            library_path,
        })
    };
    if let Some(dir) = explicit {
        let library = dir.join(LIBRARY);
        return match needs_cuda(&library) {
            Ok(false) => with(dir),
            Ok(true) => Err(format!(
                "{CPU_RUNTIME_ENV}={}: its {LIBRARY} is MLX's CUDA build; point it at MLX's CPU \
                 runtime (the mlx-cpu wheel's mlx/lib)",
                dir.display()
            )),
            Err(e) => Err(format!(
                "{CPU_RUNTIME_ENV}={}: {e}; point it at a folder holding MLX's CPU {LIBRARY} \
                 (the mlx-cpu wheel's mlx/lib)",
                dir.display()
            )),
        };
    }
    let mut looked = Vec::new();
    for dir in kept.iter().chain(runpath) {
        if Some(same_place(dir)) == loaded_dir || looked.contains(dir) {
            continue;
        }
        looked.push(dir.clone());
        let library = dir.join(LIBRARY);
        if !library.is_file() {
            continue;
        }
        // The loader takes the first folder holding the file: this one decides.
        return match needs_cuda(&library) {
            Ok(false) => with(dir),
            Ok(true) => Err(format!(
                "the next MLX runtime, {}, is a CUDA build too; set {CPU_RUNTIME_ENV} to a \
                 folder holding MLX's CPU {LIBRARY} (the mlx-cpu wheel's mlx/lib)",
                library.display()
            )),
            Err(e) => Err(format!("{e}; set {CPU_RUNTIME_ENV} to MLX's CPU runtime")),
        };
    }
    let places = if looked.is_empty() {
        "nowhere to look".to_string()
    } else {
        looked
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(format!(
        "no MLX CPU runtime was found beside the CUDA one (looked in: {places}); set \
         {CPU_RUNTIME_ENV} to a folder holding MLX's CPU {LIBRARY} (the mlx-cpu wheel's mlx/lib)"
    ))
}

/// A folder as the file system resolves it, for comparing search-path entries.
fn same_place(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// The folders of the program's RUNPATH (or RPATH), `$ORIGIN` made the program's folder.
pub fn program_runpath(program: &Path) -> Vec<PathBuf> {
    let Ok(entries) = dynamic_strings(program) else {
        return Vec::new();
    };
    let origin = program
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    entries
        .into_iter()
        .filter(|(tag, _)| *tag == DT_RUNPATH || *tag == DT_RPATH)
        .flat_map(|(_, value)| {
            value
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| PathBuf::from(d.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether the shared library at `path` needs NVIDIA's CUDA libraries (MLX's CUDA build does;
/// its CPU build needs only BLAS, LAPACK and the C++ runtime).
pub fn needs_cuda(path: &Path) -> Result<bool, String> {
    if !path.is_file() {
        return Err(format!("{}: no such file", path.display()));
    }
    let entries = dynamic_strings(path)
        .map_err(|e| format!("{}: not a readable library: {e}", path.display()))?;
    let cuda = [
        "libcuda.",
        "libcudart.",
        "libcublas",
        "libnvrtc.",
        "libnccl.",
    ];
    Ok(entries
        .iter()
        .any(|(tag, name)| *tag == DT_NEEDED && cuda.iter().any(|c| name.starts_with(c))))
}

const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// The string entries (needed libraries, RPATH, RUNPATH) of a 64-bit little-endian ELF file's
/// dynamic section, with their tags.
fn dynamic_strings(path: &Path) -> std::io::Result<Vec<(u64, String)>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut file = File::open(path)?;
    let header = read_at(&mut file, 0, 64)?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err(bad("not a 64-bit little-endian ELF file"));
    }
    let phoff = u64_at(&header, 0x20);
    let phentsize = u16::from_le_bytes([header[0x36], header[0x37]]) as u64;
    let phnum = u16::from_le_bytes([header[0x38], header[0x39]]) as u64;
    if phentsize < 56 || phnum > 4096 {
        return Err(bad("a malformed program header table"));
    }
    let table = read_at(&mut file, phoff, (phentsize * phnum) as usize)?;
    // (type, file offset, address, size in the file) of each segment.
    let segments: Vec<(u32, u64, u64, u64)> = (0..phnum as usize)
        .map(|i| {
            let h = &table[i * phentsize as usize..];
            let kind = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            (kind, u64_at(h, 8), u64_at(h, 16), u64_at(h, 32))
        })
        .collect();
    let Some(&(_, dyn_off, _, dyn_size)) = segments.iter().find(|s| s.0 == 2) else {
        return Ok(Vec::new());
    };
    let dynamic = read_upto(&mut file, dyn_off, dyn_size.min(1 << 20) as usize)?;
    let mut entries = Vec::new();
    let mut strtab = None;
    for entry in dynamic.chunks_exact(16) {
        let (tag, value) = (u64_at(entry, 0), u64_at(entry, 8));
        match tag {
            0 => break,
            DT_STRTAB => strtab = Some(value),
            DT_NEEDED | DT_RPATH | DT_RUNPATH => entries.push((tag, value)),
            _ => {}
        }
    }
    let strtab = strtab.ok_or_else(|| bad("a dynamic section without a string table"))?;
    // The string table's address, as a place in the file (through the segment that loads it).
    let base = segments
        .iter()
        .find(|&&(kind, _, addr, size)| kind == 1 && strtab >= addr && strtab < addr + size)
        .map(|&(_, off, addr, _)| strtab - addr + off)
        .ok_or_else(|| bad("the string table lies outside every loaded segment"))?;
    entries
        .into_iter()
        .map(|(tag, at)| {
            let bytes = read_upto(&mut file, base + at, 4096)?;
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            Ok((tag, String::from_utf8_lossy(&bytes[..end]).into_owned()))
        })
        .collect()
}

/// Exactly `len` bytes at `offset`.
fn read_at(file: &mut File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = vec![0u8; len];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Up to `len` bytes at `offset` (fewer at the end of the file).
fn read_upto(file: &mut File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

// ELF files and /proc/self/maps are Linux's; the product's other platform (macOS, Metal)
// never needs the CPU runtime started again.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::process::Command;

    /// A stand-in for MLX's CUDA runtime in `dir`: a `libmlx.so` that needs `libcudart.so.13`
    /// (an empty library built here), as the CUDA build needs NVIDIA's libraries.
    fn cuda_like_runtime(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let source = dir.join("stub.c");
        std::fs::write(&source, "int adapt_stub(void) { return 0; }\n").unwrap();
        let cc = |args: &[&OsStr]| {
            let out = Command::new("cc").args(args).output().expect("cc runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let cudart = dir.join("libcudart.so.13");
        cc(&[
            "-shared".as_ref(),
            "-fPIC".as_ref(),
            "-Wl,-soname,libcudart.so.13".as_ref(),
            "-o".as_ref(),
            cudart.as_os_str(),
            source.as_os_str(),
        ]);
        cc(&[
            "-shared".as_ref(),
            "-fPIC".as_ref(),
            "-o".as_ref(),
            dir.join(LIBRARY).as_os_str(),
            source.as_os_str(),
            "-Wl,--no-as-needed".as_ref(),
            cudart.as_os_str(),
        ]);
    }

    /// The CPU runtime this test program loaded (MLX's CPU build, as everywhere tests run).
    fn cpu_runtime_dir() -> PathBuf {
        let loaded = loaded_library().expect("the test program loaded libmlx.so");
        loaded.parent().unwrap().to_path_buf()
    }

    #[test]
    fn the_loaded_runtime_is_the_cpu_build_named_by_the_programs_runpath() {
        let dir = cpu_runtime_dir();
        assert_eq!(needs_cuda(&dir.join(LIBRARY)), Ok(false));
        let runpath = program_runpath(&std::env::current_exe().unwrap());
        assert!(
            runpath.iter().any(|d| same_place(d) == same_place(&dir)),
            "{runpath:?} should hold {}",
            dir.display()
        );
    }

    #[test]
    fn a_cuda_build_is_told_from_the_cpu_build_and_a_non_library_is_an_error() {
        let scratch = tempfile::tempdir().unwrap();
        let cuda = scratch.path().join("cuda");
        cuda_like_runtime(&cuda);
        assert_eq!(needs_cuda(&cuda.join(LIBRARY)), Ok(true));
        let text = scratch.path().join("notes.txt");
        std::fs::write(&text, "not a library").unwrap();
        let e = needs_cuda(&text).unwrap_err();
        assert!(e.contains("notes.txt: not a readable library"), "{e}");
        let e = needs_cuda(&scratch.path().join("none.so")).unwrap_err();
        assert!(e.contains("none.so: no such file"), "{e}");
    }

    #[test]
    fn the_cpu_runtime_is_found_after_the_loaded_cuda_one_is_left_out_of_the_search_path() {
        let scratch = tempfile::tempdir().unwrap();
        let cuda = scratch.path().join("cuda");
        cuda_like_runtime(&cuda);
        let cpu = cpu_runtime_dir();
        let other = scratch.path().join("other");
        let search = std::env::join_paths([&cuda, &other]).unwrap();
        // The CUDA runtime came from LD_LIBRARY_PATH; the program's RUNPATH names both.
        let found = find_cpu_runtime_in(
            Some(&cuda.join(LIBRARY)),
            Some(&search),
            None,
            &[cuda.clone(), cpu.clone()],
        )
        .unwrap();
        assert_eq!(found.dir, cpu);
        assert_eq!(
            found.library_path,
            std::env::join_paths([&cpu, &other]).unwrap()
        );

        // After the CUDA one in the search path: found there, and named once.
        let search = std::env::join_paths([&cuda, &cpu]).unwrap();
        let found =
            find_cpu_runtime_in(Some(&cuda.join(LIBRARY)), Some(&search), None, &[]).unwrap();
        assert_eq!(
            (found.dir.as_path(), found.library_path.as_os_str()),
            (cpu.as_path(), cpu.as_os_str())
        );

        // Named by ADAPT_CPU_RUNTIME, it is taken without looking elsewhere.
        let named = find_cpu_runtime_in(Some(&cuda.join(LIBRARY)), None, Some(&cpu), &[]).unwrap();
        assert_eq!(named.library_path, cpu.as_os_str());
    }

    #[test]
    fn without_a_cpu_runtime_the_error_says_where_it_looked_and_what_to_do() {
        let scratch = tempfile::tempdir().unwrap();
        let (cuda, cuda2) = (scratch.path().join("cuda"), scratch.path().join("cuda2"));
        cuda_like_runtime(&cuda);
        cuda_like_runtime(&cuda2);
        let empty = scratch.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let loaded = cuda.join(LIBRARY);

        let e = find_cpu_runtime_in(Some(&loaded), None, None, std::slice::from_ref(&empty))
            .unwrap_err();
        assert!(e.contains("no MLX CPU runtime was found"), "{e}");
        assert!(e.contains(&empty.display().to_string()), "{e}");
        assert!(e.contains("set ADAPT_CPU_RUNTIME"), "{e}");

        let search = std::env::join_paths([&cuda2]).unwrap();
        let e = find_cpu_runtime_in(Some(&loaded), Some(&search), None, &[]).unwrap_err();
        assert!(e.contains("cuda2/libmlx.so, is a CUDA build too"), "{e}");

        let e = find_cpu_runtime_in(Some(&loaded), None, Some(&cuda2), &[]).unwrap_err();
        assert!(
            e.contains("ADAPT_CPU_RUNTIME=") && e.contains("is MLX's CUDA build"),
            "{e}"
        );
        let e = find_cpu_runtime_in(Some(&loaded), None, Some(&empty), &[]).unwrap_err();
        assert!(e.contains("no such file"), "{e}");
    }
}
