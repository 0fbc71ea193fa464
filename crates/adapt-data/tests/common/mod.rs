//! Shared helpers: the real SmolLM2 model's tokenizer and template, and temporary files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use adapt_data::TextModel;

/// The real SmolLM2-135M-Instruct GGUF (set `ADAPT_SMOLLM2_GGUF` to move it).
pub fn smollm2_path() -> PathBuf {
    let path = std::env::var_os("ADAPT_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models-cache/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// SmolLM2's tokenizer and ChatML template, loaded once.
pub fn smollm2() -> &'static TextModel {
    static MODEL: OnceLock<TextModel> = OnceLock::new();
    MODEL.get_or_init(|| TextModel::from_gguf(&smollm2_path()).expect("SmolLM2 loads"))
}

/// Writes `content` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}
