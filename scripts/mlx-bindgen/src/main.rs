//! `adapt-mlx-bindgen MLX_C_ROOT COMPAT_HEADER OUT_FILE`
//!
//! Generates the Rust bindings that `mlx-sys` includes from `$OUT_DIR/bindings.rs`, with the
//! same settings its build script uses (Rust target 1.73, every header of `mlx/c/` in sorted
//! order, `malloc`/`realloc` blocked), plus Adapt's Linux compatibility header force-included.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, compat, out] = args.as_slice() else {
        eprintln!("usage: adapt-mlx-bindgen MLX_C_ROOT COMPAT_HEADER OUT_FILE");
        return ExitCode::from(2);
    };
    match generate(Path::new(root), Path::new(compat), Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("adapt-mlx-bindgen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn generate(root: &Path, compat: &Path, out: &Path) -> Result<(), String> {
    let header_dir = root.join("mlx/c");
    let mut headers: Vec<PathBuf> = std::fs::read_dir(&header_dir)
        .map_err(|e| format!("cannot read {}: {e}", header_dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "h"))
        .collect();
    headers.sort();
    let target = "1.73.0"
        .parse()
        .map_err(|e| format!("bad rust target: {e}"))?;
    let builder = bindgen::Builder::default()
        .rust_target(target)
        .clang_arg(format!("-I{}", root.display()))
        .clang_arg("-include")
        .clang_arg(compat.display().to_string())
        .blocklist_function("malloc")
        .blocklist_function("realloc");
    let builder = headers
        .iter()
        .fold(builder, |b, header| b.header(header.to_string_lossy()));
    let bindings = builder
        .generate()
        .map_err(|e| format!("bindgen failed: {e}"))?;
    bindings
        .write_to_file(out)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}
