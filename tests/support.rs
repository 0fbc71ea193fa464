//! Helpers for the end-to-end tests: where the real model is.

use std::path::PathBuf;

/// The real SmolLM2-135M-Instruct GGUF that `scripts/setup.sh` installs
/// (`ADAPT_SMOLLM2_GGUF` overrides). Panics with what to run when it is missing.
pub fn smollm2() -> PathBuf {
    let path = std::env::var_os("ADAPT_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models-cache/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh to install the real test model",
        path.display()
    );
    path
}
