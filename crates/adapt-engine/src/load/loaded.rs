//! What loading gives: a [`LoadedModel`] (weights, tokenizer, chat template) with its
//! [`ModelInfo`], and the [`LoadOptions`] that choose how weights are held.

use std::path::{Path, PathBuf};
use std::time::Instant;

use adapt_text::{ChatTemplate, Tokenizer};
use mlx_rs::Dtype;
use serde::Serialize;

use super::storage::short_dtype;
use crate::device::Backend;
use crate::error::Result;
use crate::models::{Model, WeightFormat};

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Storage of the weights; `None` picks what the backend runs fastest (on a GPU, float
    /// weights in the dtype they are stored in).
    pub format: Option<WeightFormat>,
    /// Keep quantized weights quantized whatever the backend (training: QLoRA trains the
    /// weights as stored).
    pub keep_quantized: bool,
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
