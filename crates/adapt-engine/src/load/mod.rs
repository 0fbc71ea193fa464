//! Loading a model from disk, as a GGUF file ([`gguf`]) or a Hugging Face / mlx-lm folder
//! ([`folder`]): the files are checked first (so errors name the file and what is wrong),
//! tensors are read by MLX (quantized ones stay MLX-quantized triplets) under Hugging Face
//! names, stored as the backend runs fastest, and handed to the architecture. The tokenizer
//! and chat template come from the same file or folder.

pub mod folder;
pub mod gguf;

use std::path::{Path, PathBuf};
use std::time::Instant;

use adapt_text::{ChatTemplate, Tokenizer};
use mlx_rs::Dtype;
use serde::Serialize;

use crate::device::Backend;
use crate::error::{EngineError, Result};
use crate::models::layers::QuantSpec;
use crate::models::{Model, WeightFormat};

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Storage of the weights; `None` picks what the backend runs fastest.
    pub format: Option<WeightFormat>,
}

impl WeightFormat {
    /// What `backend` runs fastest: GPUs run quantized f16 weights fast; MLX's CPU backend
    /// runs f32 dense weights many times faster than quantized or f16 ones.
    pub fn for_backend(backend: Backend) -> WeightFormat {
        if backend.is_gpu() {
            WeightFormat {
                dtype: Dtype::Float16,
                dequantize: false,
            }
        } else {
            WeightFormat {
                dtype: Dtype::Float32,
                dequantize: true,
            }
        }
    }
}

/// What a loaded model is.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ModelInfo {
    pub path: PathBuf,
    pub name: String,
    pub architecture: String,
    pub n_params: usize,
    /// How the file stores its weights, e.g. "Q4_1".
    pub file_quantization: String,
    /// How the engine holds them, e.g. "f32 (dequantized)".
    pub loaded_as: String,
    /// Bytes of the weights in memory.
    pub bytes: usize,
    pub context_length: usize,
    pub load_seconds: f64,
    /// The attached adapter: its folder and a fingerprint of its files.
    pub adapter: Option<(PathBuf, String)>,
}

/// A model ready to generate: weights, tokenizer and chat template.
pub struct LoadedModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub chat_template: Option<ChatTemplate>,
    pub info: ModelInfo,
}

impl LoadedModel {
    /// Attaches the adapter folder `dir` (ours or mlx-lm's) to the model and records it, so
    /// saved conversations know which adapter their cache belongs to.
    pub fn attach_adapter(&mut self, dir: &Path) -> Result<()> {
        crate::train::adapters::load(&mut self.model, dir)?;
        self.info.adapter = Some((dir.to_path_buf(), crate::train::adapters::fingerprint(dir)?));
        Ok(())
    }

    /// Makes `adapter` (none: the base model) the attached one, swapping adapters on the same
    /// base weights. Refuses an adapter whose files changed since it was named.
    pub fn use_adapter(&mut self, adapter: Option<&(PathBuf, String)>) -> Result<()> {
        let now = self.info.adapter.as_ref().map(|(_, f)| f);
        if now == adapter.map(|(_, f)| f) {
            return Ok(());
        }
        crate::train::adapters::remove(&mut self.model);
        self.info.adapter = None;
        if let Some((dir, fingerprint)) = adapter {
            self.attach_adapter(dir)?;
            if self.info.adapter.as_ref().map(|(_, f)| f) != Some(fingerprint) {
                crate::train::adapters::remove(&mut self.model);
                self.info.adapter = None;
                return Err(EngineError::InvalidRequest(format!(
                    "{}: the adapter's files changed since this conversation started; start a \
                     new conversation",
                    dir.display()
                )));
            }
        }
        Ok(())
    }
}

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

/// Evaluates the weights and bundles the model with its tokenizer, chat template (from
/// `template`) and description.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    model: Model,
    tokenizer: Tokenizer,
    template: Option<&str>,
    path: &Path,
    name: String,
    file_quantization: String,
    format: WeightFormat,
    started: Instant,
) -> Result<LoadedModel> {
    mlx_rs::transforms::eval(model.parameters().flatten().values().copied())?;
    let chat_template = template
        .map(|src| ChatTemplate::new(src, tokenizer.bos_token(), tokenizer.eos_token()))
        .transpose()?;
    let info = ModelInfo {
        path: path.to_path_buf(),
        name,
        architecture: model.args.architecture.clone(),
        n_params: model.n_params(),
        file_quantization,
        loaded_as: describe(format),
        bytes: model.nbytes(),
        context_length: model.args.max_position_embeddings,
        load_seconds: started.elapsed().as_secs_f64(),
        adapter: None,
    };
    Ok(LoadedModel {
        model,
        tokenizer,
        chat_template,
        info,
    })
}

/// The float dtype of most of the float tensors (quantization scales included).
pub(crate) fn float_dtype<'a>(arrays: impl IntoIterator<Item = &'a mlx_rs::Array>) -> Dtype {
    let mut bytes: std::collections::HashMap<Dtype, usize> = Default::default();
    for a in arrays {
        if matches!(a.dtype(), Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16) {
            *bytes.entry(a.dtype()).or_default() += a.nbytes();
        }
    }
    bytes
        .into_iter()
        .max_by_key(|(_, b)| *b)
        .map_or(Dtype::Float16, |(d, _)| d)
}

/// A float dtype's short name ("f32", "f16", "bf16").
pub(crate) fn short_dtype(d: Dtype) -> &'static str {
    match d {
        Dtype::Float32 => "f32",
        Dtype::Float16 => "f16",
        Dtype::Bfloat16 => "bf16",
        _ => "other",
    }
}

/// How weights are stored, e.g. "4-bit (group 32) mixed, f16" (`mixed`: some modules differ
/// from `q`) or just the float dtype's name.
pub(crate) fn storage_label(q: Option<QuantSpec>, mixed: bool, dtype: &str) -> String {
    match q {
        Some(q) => format!(
            "{}-bit (group {}){}, {dtype}",
            q.bits,
            q.group_size,
            if mixed { " mixed" } else { "" }
        ),
        None => dtype.to_string(),
    }
}

pub(crate) fn describe(format: WeightFormat) -> String {
    let dtype = short_dtype(format.dtype);
    if format.dequantize {
        format!("{dtype} (dequantized)")
    } else {
        format!("{dtype} (quantized kept)")
    }
}

pub(crate) fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
