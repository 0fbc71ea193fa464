//! GGUF files: checked by our own reader (header, metadata, tensor table, length), tensors
//! read by [`super::gguf_tensors`] (every ggml block format, decoded or kept quantized) and put
//! in Hugging Face terms with the shape from `<arch>.*` metadata ([`gguf_model`], per
//! architecture), and the tokenizer and chat template rebuilt from `tokenizer.*` metadata.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use adapt_gguf::quants::DecodeError;
use adapt_gguf::{GgmlType, GgufError, GgufFile, GgufSupport, Problem};
use adapt_text::Tokenizer;
use mlx_rs::Array;

use super::gguf_model;
use super::loaded::{assemble, file_stem, LoadOptions, LoadedModel};
use crate::device::Backend;
use crate::error::{EngineError, Result};
use crate::models::{Model, ModelArgs, QuantConfig, WeightFormat, Weights, GGUF_ARCHITECTURES};

/// Loads the GGUF file at `path`.
pub fn load(path: &Path, options: &LoadOptions) -> Result<LoadedModel> {
    let started = Instant::now();
    let mut format = options
        .format
        .unwrap_or_else(|| WeightFormat::for_backend(Backend::detect()));
    format.dequantize &= !options.keep_quantized;
    let (gguf, args, arrays) = read(path, Some(format))?;
    let file_quantization = dominant_type(&gguf);
    // ggml's quantized formats all use blocks of 32 along the input dimension, which is
    // the group size `Weights` assumes without a configuration.
    let mut weights = Weights::new(path, arrays, QuantConfig::default(), format);
    let model = Model::new(args, &mut weights)?;
    drop(weights);
    let tokenizer = Tokenizer::from_gguf(&gguf)?;
    // The file's own name, as the library lists it: `general.name` is often a training
    // label ("Smollm2 135M 8k Lc100K Mix1 Ep2") that names no file a person can find.
    let name = file_stem(path);
    let template = gguf.get_str("tokenizer.chat_template");
    assemble(
        model,
        tokenizer,
        template,
        path,
        name,
        file_quantization,
        format,
        started,
    )
}

/// What the engine reads of GGUF files: the one statement both loading and the model library
/// (runnable or not) check files against.
pub const GGUF_SUPPORT: GgufSupport = GgufSupport {
    architectures: GGUF_ARCHITECTURES,
    rope_scaling: &["linear", "yarn"],
    rope_freqs: true,
};

/// The checked GGUF file at `path`, the model's shape, and its tensors under Hugging Face
/// names, held as `format` says (`None`: as stored, quantized ones as MLX triplets, groups of
/// 32; see [`super::gguf_tensors`]).
pub fn read(
    path: &Path,
    format: Option<WeightFormat>,
) -> Result<(GgufFile, ModelArgs, HashMap<String, Array>)> {
    if !path.exists() {
        return Err(EngineError::ModelNotFound {
            path: path.to_path_buf(),
        });
    }
    let gguf = GgufFile::open(path)?;
    check(&gguf)?;
    let tensors = super::gguf_tensors::read_tensors(&gguf, format)?;
    let (args, arrays) = gguf_model::prepare(&gguf, tensors)?;
    Ok((gguf, args, arrays))
}

/// The first reason [`GGUF_SUPPORT`] gives for not loading `gguf`, as an error.
fn check(gguf: &GgufFile) -> Result<()> {
    let path = gguf.path();
    match GGUF_SUPPORT.problems(gguf).into_iter().next() {
        None => Ok(()),
        Some(Problem::Architecture { found, supported }) => {
            Err(EngineError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture: found.unwrap_or_else(|| "(none)".into()),
                supported,
            })
        }
        Some(Problem::TensorType {
            ggml_type, tensor, ..
        }) => Err(EngineError::Gguf(GgufError::Tensor {
            path: path.to_path_buf(),
            tensor,
            source: DecodeError::Unsupported(ggml_type),
        })),
        Some(problem) => Err(EngineError::invalid_model(path, problem.to_string())),
    }
}

/// The storage type of most of the file's weight bytes, e.g. "Q4_1".
fn dominant_type(gguf: &GgufFile) -> String {
    let mut bytes: HashMap<GgmlType, u64> = HashMap::new();
    for t in gguf.tensors() {
        *bytes.entry(t.ggml_type).or_default() += t.byte_size().unwrap_or(0);
    }
    bytes
        .into_iter()
        .max_by_key(|(_, b)| *b)
        .map_or_else(|| "none".into(), |(t, _)| t.to_string())
}
