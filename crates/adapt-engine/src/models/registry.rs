//! The architectures the engine implements: each `model_type` with the file that reads its
//! settings, prepares its checkpoints' tensors and gives the [`Layout`] of its decoder.

use std::collections::HashMap;
use std::path::Path;

use mlx_rs::Array;

use super::args::ModelArgs;
use super::config::Config;
use super::decoder::Layout;
use super::{gemma2, gemma3_text, gpt2, llama, mixtral, phi3, qwen2, qwen3, qwen3_moe};
use crate::error::{EngineError, Result};

/// Architectures the engine implements, by their `config.json` `model_type`.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "llama",
    "mistral",
    "smollm",
    "qwen2",
    "qwen3",
    "phi3",
    "gemma2",
    "gemma3_text",
    "gpt2",
    "mixtral",
    "qwen3_moe",
];

/// Architectures whose GGUF files the engine reads, by llama.cpp's names
/// (`general.architecture`; Mixtral files are `llama` with experts).
pub const GGUF_ARCHITECTURES: &[&str] = &[
    "llama", "mistral", "smollm", "qwen2", "qwen3", "qwen3moe", "phi3", "gemma2", "gemma3", "gpt2",
];

/// Every architecture name the engine runs, as `config.json` or a GGUF file states it.
pub fn architecture_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = SUPPORTED_ARCHITECTURES.to_vec();
    for arch in GGUF_ARCHITECTURES {
        if !names.contains(arch) {
            names.push(arch);
        }
    }
    names
}

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
            "gpt2" => gpt2::args(&c),
            "mixtral" => mixtral::args(&c),
            "qwen3_moe" => qwen3_moe::args(&c),
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
            "gpt2" => gpt2::LAYOUT,
            "mixtral" => mixtral::LAYOUT,
            "qwen3_moe" => qwen3_moe::LAYOUT,
            _ => return None,
        })
    }

    /// Puts a folder's tensors (read from `path`) into the form and under the names the
    /// decoder reads: the architecture's own preparation (stacked experts, GPT-2's Conv1D
    /// weights), then its [`Layout::renames`].
    pub fn prepare_checkpoint(
        &self,
        path: &Path,
        arrays: HashMap<String, Array>,
    ) -> Result<HashMap<String, Array>> {
        let mut arrays = arrays;
        match self.architecture.as_str() {
            "gpt2" => gpt2::sanitize(&mut arrays)?,
            "mixtral" => mixtral::sanitize(self, path, &mut arrays)?,
            "qwen3_moe" => qwen3_moe::sanitize(self, path, &mut arrays)?,
            _ => {}
        }
        Ok(self.rename_all(arrays, true))
    }

    /// `arrays` renamed to the decoder's names (`to_decoder`) or to the checkpoints' names.
    pub fn rename_all(
        &self,
        arrays: HashMap<String, Array>,
        to_decoder: bool,
    ) -> HashMap<String, Array> {
        let Some(layout) = self.layout().filter(|l| !l.renames.is_empty()) else {
            return arrays;
        };
        arrays
            .into_iter()
            .map(|(name, a)| (layout.rename(&name, to_decoder), a))
            .collect()
    }

    /// A decoder parameter's name as the architecture's checkpoints (and mlx-lm) call it.
    pub fn checkpoint_name(&self, name: &str) -> String {
        self.layout()
            .map_or_else(|| name.to_string(), |l| l.rename(name, false))
    }

    /// A checkpoint's name for a parameter or module as the decoder calls it.
    pub fn decoder_name(&self, name: &str) -> String {
        self.layout()
            .map_or_else(|| name.to_string(), |l| l.rename(name, true))
    }
}
