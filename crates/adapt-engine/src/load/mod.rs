//! Loading a model from disk, as a GGUF file ([`gguf`]) or a Hugging Face / mlx-lm folder
//! ([`folder`]): the files are checked first (so errors name the file and what is wrong),
//! tensors are read by MLX (quantized ones stay MLX-quantized triplets) under Hugging Face
//! names, stored as the backend runs fastest, and handed to the architecture. The tokenizer
//! and chat template come from the same file or folder.

pub mod folder;
pub mod gguf;
pub mod gguf_model;
mod gguf_tensors;
pub mod layout;
mod loaded;
pub mod storage;

use std::path::Path;

use crate::error::{EngineError, Result};
pub(crate) use loaded::assemble;
pub use loaded::{LoadOptions, LoadedModel, ModelInfo};
pub(crate) use storage::{float_dtype, storage_label};

/// Loads the model at `path`: a `.gguf` file, or a folder with `config.json` and safetensors.
pub fn load(path: &Path, options: &LoadOptions) -> Result<LoadedModel> {
    if !path.exists() {
        return Err(EngineError::ModelNotFound {
            path: path.to_path_buf(),
        });
    }
    if path.is_dir() {
        folder::load(path, options)
    } else {
        gguf::load(path, options)
    }
}
