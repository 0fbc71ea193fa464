//! GGUF → an MLX model folder that mlx-lm and Hugging Face tools load.
//!
//! Tensors get the architecture's Hugging Face / mlx-lm names and `config.json` its settings
//! (both from [`gguf_model`]); llama.cpp's Q/K row permutation (for RoPE on interleaved
//! pairs, Llama family only) is undone so the folder uses the Hugging Face layout (RoPE on
//! halves); quantized tensors stay quantized as the loader maps them (`load::gguf_tensors`:
//! 4-bit for Q4_0, Q4_1, Q4_K and, re-quantized, Q2_K / Q3_K; 8-bit for Q5_0, Q5_1, Q8_0, Q5_K
//! and, re-quantized, Q6_K; groups of 32, f16 scales) — recorded in `config.json` (per-module
//! entries where a tensor differs from the most common kind, as a Q4_K_M file's Q6_K layers
//! do); the tokenizer and chat template are rebuilt from the GGUF metadata as `tokenizer.json`
//! + `tokenizer_config.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use adapt_text::Tokenizer;
use mlx_rs::{Array, Dtype};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::{EngineError, Result};
use crate::load::{gguf, gguf_model, layout};
use crate::models::layers::QuantSpec;
use crate::models::RopeScaling;
use crate::save::Staging;

/// What a conversion or quantization wrote.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConvertReport {
    pub source: PathBuf,
    pub output: PathBuf,
    /// How the output stores its weights, e.g. "4-bit (group 32)".
    pub quantization: String,
    pub tensors: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Mean KL divergence (nats per token) of the output's next-token distribution from the
    /// source's on a fixed text; `None` where not measured.
    pub mean_kl: Option<f64>,
    pub perplexity_before: Option<f64>,
    pub perplexity_after: Option<f64>,
    pub seconds: f64,
}

/// Converts the GGUF file `src` into the model folder `out` (which must not exist yet).
pub fn gguf_to_folder(
    src: &Path,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<ConvertReport> {
    let started = Instant::now();
    progress("reading the GGUF file");
    let (file, args, mut arrays) = gguf::read(src, None)?;
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let bytes_before = std::fs::metadata(src).map(|m| m.len()).unwrap_or(0);

    if let RopeScaling::Factors { .. } = args.rope_scaling {
        return Err(EngineError::invalid_model(
            src,
            "its per-frequency RoPE factors (rope_freqs) match no Llama 3 setting a config.json \
             can state, so it cannot become a model folder; use the GGUF file as it is",
        ));
    }
    let mut config = gguf_model::hf_config(&file, &arrays)?;
    if args.qk_permuted {
        progress("restoring the Hugging Face layout of the query and key rows");
        layout::to_hf_rows(&mut arrays, &args)?;
    }
    // Tensors the model does not have (RoPE factors are in config.json).
    arrays.retain(|name, _| name.starts_with("model.") || name.starts_with("lm_head."));
    let arrays = args.rename_all(arrays, false);
    let (default, overrides) = quantization(&arrays);

    progress("writing the model folder");
    let staging = Staging::new(out)?;
    complete_config(&mut config, &tokenizer, &arrays);
    if let Some(q) = default {
        let mut entry = Map::new();
        entry.insert("group_size".into(), q.group_size.into());
        entry.insert("bits".into(), q.bits.into());
        for (module, spec) in &overrides {
            entry.insert(
                module.clone(),
                json!({"group_size": spec.group_size, "bits": spec.bits}),
            );
        }
        config["quantization"] = Value::Object(entry.clone());
        config["quantization_config"] = Value::Object(entry);
    }
    staging.json("config.json", &config)?;
    let mut generation = json!({"eos_token_id": tokenizer.eos_token_ids()});
    if let Some(bos) = tokenizer.bos_token_id() {
        generation["bos_token_id"] = bos.into();
    }
    staging.json("generation_config.json", &generation)?;
    tokenizer.write_hf_files(&staging.tmp, args.max_position_embeddings)?;
    let bytes_after = staging.weights(&arrays)?;
    let output = staging.finish()?;
    Ok(ConvertReport {
        source: src.to_path_buf(),
        output,
        quantization: describe(default, !overrides.is_empty(), &arrays),
        tensors: arrays.len(),
        bytes_before,
        bytes_after,
        mean_kl: None,
        perplexity_before: None,
        perplexity_after: None,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The most common quantization of the quantized modules, and the modules that differ.
fn quantization(arrays: &HashMap<String, Array>) -> (Option<QuantSpec>, Vec<(String, QuantSpec)>) {
    let mut specs: Vec<(String, QuantSpec)> = arrays
        .iter()
        .filter_map(|(name, scales)| {
            let module = name.strip_suffix(".scales")?;
            let weight = arrays.get(&format!("{module}.weight"))?;
            let packed = *weight.shape().last()?;
            let groups = *scales.shape().last()?;
            // ggml quantizes in blocks of 32 values.
            let bits = packed * 32 / (groups * 32);
            Some((
                module.to_string(),
                QuantSpec {
                    group_size: 32,
                    bits,
                },
            ))
        })
        .collect();
    specs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut counts: HashMap<i32, usize> = HashMap::new();
    for (_, s) in &specs {
        *counts.entry(s.bits).or_default() += 1;
    }
    let Some(bits) = counts
        .into_iter()
        .max_by_key(|(b, n)| (*n, *b))
        .map(|(b, _)| b)
    else {
        return (None, Vec::new());
    };
    let default = QuantSpec {
        group_size: 32,
        bits,
    };
    let overrides = specs.into_iter().filter(|(_, s)| *s != default).collect();
    (Some(default), overrides)
}

/// The GGUF file's `config.json` completed with what the folder adds: the float dtype and
/// the special tokens.
pub(crate) fn complete_config(
    config: &mut Value,
    tokenizer: &Tokenizer,
    arrays: &HashMap<String, Array>,
) {
    let dtype = dtype_name(crate::load::float_dtype(arrays.values()));
    config["torch_dtype"] = dtype.into();
    config["eos_token_id"] = json!(tokenizer.eos_token_ids());
    if let Some(bos) = tokenizer.bos_token_id() {
        config["bos_token_id"] = bos.into();
    }
}

pub(crate) fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::Float32 => "float32",
        Dtype::Bfloat16 => "bfloat16",
        _ => "float16",
    }
}

pub(crate) fn describe(
    q: Option<QuantSpec>,
    mixed: bool,
    arrays: &HashMap<String, Array>,
) -> String {
    let dtype = crate::load::float_dtype(arrays.values());
    crate::load::storage_label(q, mixed, dtype_name(dtype))
}
