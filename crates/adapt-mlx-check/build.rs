//! On Linux, mlx-sys cannot build MLX itself; scripts/setup.sh prepares a runtime and writes
//! `.cargo/mlx-linux.toml`, which sets `ADAPT_MLX_RUNTIME` for every build. Without it, cargo
//! would run mlx-sys's macOS build script and fail with errors that do not mention set-up;
//! this check fails first, with the command to run.

fn main() {
    println!("cargo:rerun-if-env-changed=ADAPT_MLX_RUNTIME");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let runtime = std::env::var("ADAPT_MLX_RUNTIME").unwrap_or_default();
    let lib = std::path::Path::new(&runtime).join("libmlx.so");
    if runtime.is_empty() || !lib.is_file() {
        let what = if runtime.is_empty() {
            "is not prepared on this machine".to_string()
        } else {
            format!("is missing ({} does not exist)", lib.display())
        };
        panic!(
            "\n\nThe MLX runtime for Linux {what}.\nRun `scripts/setup.sh` in the repository \
             root (it installs MLX's CPU runtime and writes .cargo/mlx-linux.toml), then build \
             again.\n\n"
        );
    }
}
