//! Fixtures shared by the tests of every crate. Only locations live here (no MLX, no
//! dependencies), so the MLX-free crates can use it too; tiny random models are built by
//! `adapt_engine::testing`.

use std::path::PathBuf;

/// The real SmolLM2-135M-Instruct Q4_1 GGUF that `scripts/setup.sh` installs into
/// `models-cache/` (`ADAPT_SMOLLM2_GGUF` overrides the path).
///
/// Panics, saying what to run, when the file is missing.
pub fn smollm2_gguf() -> PathBuf {
    let path = std::env::var_os("ADAPT_SMOLLM2_GGUF").map_or_else(
        || repo_root().join("models-cache/SmolLM2-135M-Instruct.Q4_1.gguf"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the test model {} is missing: run scripts/setup.sh to install it (or set ADAPT_SMOLLM2_GGUF)",
        path.display()
    );
    path
}

/// The folder of the package whose tests are running, as cargo tells the running test.
/// Unlike `env!("CARGO_MANIFEST_DIR")`, which is fixed when the test is compiled, it stays
/// right when a build folder shared by checkouts in other places (as `.ci/run` keeps one)
/// reuses a compiled test.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .expect("tests run under cargo, which sets CARGO_MANIFEST_DIR")
}

/// The repository's root: the nearest folder holding `Cargo.lock` at or above
/// [`manifest_dir`].
pub fn repo_root() -> PathBuf {
    let dir = manifest_dir();
    dir.ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .map(PathBuf::from)
        .unwrap_or(dir)
}

/// The one gate of slow tests (training on the real model, cross-checks against the reference):
/// they run when `ADAPT_SLOW_TESTS=1`, which `scripts/test.sh` (the README's test command and
/// CI's) sets. Without it a test says it did not run and returns `false` — except under
/// `CI=true`, where a slow test that would not run fails: CI never passes by skipping.
pub fn slow_tests(test: &str) -> bool {
    if std::env::var("ADAPT_SLOW_TESTS").as_deref() == Ok("1") {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} is a slow test and CI=true, but ADAPT_SLOW_TESTS is not 1: run scripts/test.sh \
         (it sets the gate and the reference environment)"
    );
    eprintln!(
        "{test}: not run — a slow test (ADAPT_SLOW_TESTS=1 runs it, as scripts/test.sh does)"
    );
    false
}

/// The reference environment's Python (mlx-lm) for a slow test, or `None` when slow tests do
/// not run (see [`slow_tests`]). With the gate open, a missing environment fails the test:
/// `ADAPT_REFERENCE_PYTHON` is set by `scripts/test.sh` from `scripts/reference/env.sh`.
pub fn reference_python(test: &str) -> Option<String> {
    if !slow_tests(test) {
        return None;
    }
    let python = std::env::var("ADAPT_REFERENCE_PYTHON").unwrap_or_default();
    assert!(
        !python.is_empty() && std::path::Path::new(&python).exists(),
        "{test} needs the reference environment, but ADAPT_REFERENCE_PYTHON is {python:?}: \
         run scripts/test.sh, or set it to the output of scripts/reference/env.sh"
    );
    Some(python)
}

/// The Python of the environment with the official `openai` client, for a slow test, or
/// `None` when slow tests do not run; `ADAPT_OPENAI_PYTHON` is set by `scripts/test.sh` from
/// `scripts/reference/openai-env.sh`.
pub fn openai_python(test: &str) -> Option<String> {
    if !slow_tests(test) {
        return None;
    }
    let python = std::env::var("ADAPT_OPENAI_PYTHON").unwrap_or_default();
    assert!(
        !python.is_empty() && std::path::Path::new(&python).exists(),
        "{test} needs the openai client's environment, but ADAPT_OPENAI_PYTHON is {python:?}: \
         run scripts/test.sh, or set it to the output of scripts/reference/openai-env.sh"
    );
    Some(python)
}

/// Runs `scripts/reference/<script>` with `args` under `python` (the reference environment,
/// `ADAPT_REFERENCE_PYTHON`) and returns its standard output; panics with its standard error
/// when it fails.
pub fn run_reference<S: AsRef<std::ffi::OsStr>>(
    python: &str,
    script: &str,
    args: impl IntoIterator<Item = S>,
) -> Vec<u8> {
    let out = std::process::Command::new(python)
        .arg(repo_root().join("scripts/reference").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Tiny Llama GGUF files made in `dir` by `scripts/reference/llama_cpp_ref.py` (seeded random
/// weights in F16, quantized by llama.cpp's own quantizer to Q2_K, Q3_K_M, Q4_K_M, Q5_K_M and
/// Q6_K), as (llama.cpp's type name, path), F16 first.
pub fn llama_cpp_files(python: &str, dir: &std::path::Path, seed: u64) -> Vec<(String, PathBuf)> {
    let out = run_reference(
        python,
        "llama_cpp_ref.py",
        ["model".as_ref(), dir.as_os_str(), seed.to_string().as_ref()],
    );
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(name, path)| (name.to_string(), PathBuf::from(path)))
        .collect()
}

/// A small disk: a tmpfs of a given size mounted on a folder for the life of the value, so a
/// test can fill it (`ENOSPC`) and see what a full disk does. Unmounted when dropped.
pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` bytes on `at` (created), or `None` where this machine cannot
    /// mount one (mounting needs root) — except under `CI=true`, where that fails the test, as
    /// a gate whose environment is missing does.
    pub fn mount(test: &str, at: &std::path::Path, bytes: u64) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).expect("the small disk's mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes}"))
            .arg("tmpfs")
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk {
                path: at.to_path_buf(),
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{test} needs a small tmpfs disk and CI=true, but mounting one failed ({why}): \
                     run the tests as root"
                );
                eprintln!("{test}: not run — cannot mount a small tmpfs here ({why})");
                None
            }
        }
    }

    /// Where the disk is mounted.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Fills the disk's free space with a file, so the next write fails with `ENOSPC`; the
    /// file is returned for [`std::fs::remove_file`] to free the space again.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path).expect("the filler file");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let mut byte = [0u8; 1];
        while file.write_all(&byte).is_ok() {
            byte[0] = byte[0].wrapping_add(1);
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}
