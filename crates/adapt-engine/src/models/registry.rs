//! The architectures the engine implements: each `model_type` (GGUF `general.architecture`)
//! with the file that reads its settings and the [`Layout`] of its decoder.

use std::path::Path;

use super::args::ModelArgs;
use super::config::Config;
use super::decoder::Layout;
use super::{gemma2, gemma3_text, llama, phi3, qwen2, qwen3};
use crate::error::{EngineError, Result};

/// Architectures the engine implements, by their `config.json` `model_type` / GGUF name.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "llama",
    "mistral",
    "smollm",
    "qwen2",
    "qwen3",
    "phi3",
    "gemma2",
    "gemma3_text",
];

/// The error for an architecture not in [`SUPPORTED_ARCHITECTURES`].
pub fn unsupported(path: &Path, architecture: &str) -> EngineError {
    EngineError::UnsupportedArchitecture {
        path: path.to_path_buf(),
        architecture: architecture.to_string(),
        supported: SUPPORTED_ARCHITECTURES,
    }
}

impl ModelArgs {
    /// Reads `config.json` (already parsed) of the folder at `path`.
    pub fn from_config(path: &Path, json: &serde_json::Value) -> Result<ModelArgs> {
        let c = Config { path, json };
        let model_type = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| EngineError::invalid_model(path, "field 'model_type' is missing"))?;
        match model_type {
            "llama" | "mistral" | "smollm" => llama::args(&c, model_type),
            "qwen2" => qwen2::args(&c),
            "qwen3" => qwen3::args(&c),
            "phi3" => phi3::args(&c),
            "gemma2" => gemma2::args(&c),
            "gemma3_text" => gemma3_text::args(&c),
            other => Err(unsupported(path, other)),
        }
    }

    pub(crate) fn layout(&self) -> Option<Layout> {
        Some(match self.architecture.as_str() {
            "llama" | "mistral" | "smollm" => llama::LAYOUT,
            "qwen2" => qwen2::LAYOUT,
            "qwen3" => qwen3::LAYOUT,
            "phi3" => phi3::LAYOUT,
            "gemma2" => gemma2::LAYOUT,
            "gemma3_text" => gemma3_text::LAYOUT,
            _ => return None,
        })
    }
}
