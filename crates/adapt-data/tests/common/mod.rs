//! Shared helpers: the real SmolLM2 model's tokenizer and template, and temporary files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use adapt_data::TextModel;

pub use adapt_testsupport::smollm2_gguf as smollm2_path;

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
