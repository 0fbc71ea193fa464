//! GGUF files: checked by our own reader (header, metadata, tensor table, length), tensors
//! read by MLX and put in Hugging Face terms with the shape from `<arch>.*` metadata
//! ([`gguf_model`], per architecture), and the tokenizer and chat template rebuilt from
//! `tokenizer.*` metadata.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use adapt_gguf::{GgmlType, GgufFile};
use adapt_text::Tokenizer;
use mlx_rs::Array;

use super::gguf_model;
use super::loaded::{assemble, file_stem, LoadOptions, LoadedModel};
use crate::device::Backend;
use crate::error::{EngineError, Result};
use crate::models::{Model, ModelArgs, QuantConfig, WeightFormat, Weights};

/// Loads the GGUF file at `path`.
pub fn load(path: &Path, options: &LoadOptions) -> Result<LoadedModel> {
    let started = Instant::now();
    let (gguf, args, arrays) = read(path)?;
    let file_quantization = dominant_type(&gguf);
    let format = options
        .format
        .unwrap_or_else(|| WeightFormat::for_backend(Backend::detect()));
    // ggml's quantized formats all use blocks of 32 along the input dimension, which is
    // the group size `Weights` assumes without a configuration.
    let mut weights = Weights::new(path, arrays, QuantConfig::default(), format);
    let model = Model::new(args, &mut weights)?;
    drop(weights);
    let tokenizer = Tokenizer::from_gguf(&gguf)?;
    let name = gguf
        .get_str("general.name")
        .map(str::to_string)
        .unwrap_or_else(|| file_stem(path));
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

/// The checked GGUF file at `path`, the model's shape, and its tensors read by MLX under
/// Hugging Face names (quantized ones as MLX triplets, groups of 32).
pub fn read(path: &Path) -> Result<(GgufFile, ModelArgs, HashMap<String, Array>)> {
    if !path.exists() {
        return Err(EngineError::ModelNotFound {
            path: path.to_path_buf(),
        });
    }
    let gguf = GgufFile::open(path)?;
    gguf_model::architecture(&gguf)?;
    if let Some(t) = gguf
        .tensors()
        .iter()
        .find(|t| !GgmlType::MLX_READABLE.contains(&t.ggml_type))
    {
        return Err(EngineError::invalid_model(
            path,
            format!(
                "tensor '{}' is stored as {}, which Adapt cannot read; use a GGUF file with \
                 F32, F16, BF16, Q8_0, Q4_0 or Q4_1 tensors",
                t.name, t.ggml_type
            ),
        ));
    }
    let tensors = mlx_rs::io::GgufFile::load(path)
        .and_then(|f| f.arrays())
        .map_err(|e| EngineError::invalid_model(path, format!("MLX could not read it: {e}")))?;
    let (args, arrays) = gguf_model::prepare(&gguf, tensors)?;
    Ok((gguf, args, arrays))
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
