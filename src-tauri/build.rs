fn main() {
    // The Linux package installs MLX's runtime under /usr/lib/adapt (see
    // scripts/setup.sh, which lists its files for the .deb): the installed app looks there
    // after the prepared runtime of the machine that built it.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,/usr/lib/adapt/mlx/lib");
    }
    tauri_build::build()
}
