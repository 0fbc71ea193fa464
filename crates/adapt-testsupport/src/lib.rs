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
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models-cache/SmolLM2-135M-Instruct.Q4_1.gguf")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the test model {} is missing: run scripts/setup.sh to install it (or set ADAPT_SMOLLM2_GGUF)",
        path.display()
    );
    path
}
