//! GGUF files: checked by our own reader (header, metadata, tensor table, length), tensors
//! read by [`super::gguf_tensors`] and renamed to Hugging Face names, the shape from `<arch>.*`
//! metadata, and the tokenizer and chat template rebuilt from `tokenizer.*` metadata.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use adapt_gguf::quants::DecodeError;
use adapt_gguf::{GgmlType, GgufError, GgufFile, GgufSupport, Problem};
use adapt_text::Tokenizer;
use mlx_rs::Array;

use super::loaded::{assemble, file_stem, LoadOptions, LoadedModel};
use crate::device::Backend;
use crate::error::{EngineError, Result};
use crate::models::{Model, ModelArgs, QuantConfig, RopeScaling, WeightFormat, Weights};

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

/// Architectures whose GGUF files Adapt reads (llama.cpp's names).
pub const GGUF_ARCHITECTURES: &[&str] = &["llama", "mistral", "smollm"];

/// What the engine reads of GGUF files: the one statement both loading and the model library
/// (runnable or not) check files against.
pub const GGUF_SUPPORT: GgufSupport = GgufSupport {
    architectures: GGUF_ARCHITECTURES,
    rope_scaling: &["linear"],
    rope_freqs: false,
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
    let args = gguf_args(&gguf)?;
    let tensors = super::gguf_tensors::read_tensors(&gguf, format)?;
    Ok((gguf, args, rename_gguf_tensors(tensors)))
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

/// The architecture's shape from GGUF metadata (`<arch>.block_count`, …).
fn gguf_args(gguf: &GgufFile) -> Result<ModelArgs> {
    let path = gguf.path();
    let arch = gguf.architecture().unwrap_or("(none)").to_string();
    if !GGUF_ARCHITECTURES.contains(&arch.as_str()) {
        return Err(EngineError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            architecture: arch,
            supported: GGUF_ARCHITECTURES,
        });
    }
    let key = |k: &str| format!("{arch}.{k}");
    let need = |k: &str| -> Result<u32> {
        gguf.get_u32(&key(k)).ok_or_else(|| {
            EngineError::invalid_model(path, format!("metadata '{}' is missing", key(k)))
        })
    };
    let hidden = need("embedding_length")? as i32;
    let heads = need("attention.head_count")? as i32;
    if heads == 0 || hidden % heads != 0 {
        return Err(EngineError::invalid_model(
            path,
            format!("{hidden} hidden units do not split into {heads} heads"),
        ));
    }
    let rope_scaling = match gguf.get_str(&key("rope.scaling.type")) {
        None | Some("none") => RopeScaling::None,
        Some("linear") => RopeScaling::Linear {
            factor: gguf.get_f32(&key("rope.scaling.factor")).unwrap_or(1.0),
        },
        Some(other) => {
            return Err(EngineError::invalid_model(
                path,
                format!("RoPE scaling '{other}' is not supported yet"),
            ))
        }
    };
    if gguf.tensor("rope_freqs.weight").is_some() {
        return Err(EngineError::invalid_model(
            path,
            "per-frequency RoPE factors (Llama 3.1 style) are not supported yet",
        ));
    }
    let vocab = gguf
        .get_u32(&key("vocab_size"))
        .or_else(|| {
            gguf.get_string_array("tokenizer.ggml.tokens")
                .map(|t| t.len() as u32)
        })
        .ok_or_else(|| EngineError::invalid_model(path, "the vocabulary size is missing"))?;
    let head_dim = gguf
        .get_u32(&key("attention.key_length"))
        .map_or(hidden / heads, |n| n as i32);
    Ok(ModelArgs {
        architecture: arch.clone(),
        hidden_size: hidden,
        intermediate_size: need("feed_forward_length")? as i32,
        num_hidden_layers: need("block_count")? as i32,
        num_attention_heads: heads,
        num_key_value_heads: gguf
            .get_u32(&key("attention.head_count_kv"))
            .map_or(heads, |n| n as i32),
        head_dim,
        rope_dims: head_dim,
        vocab_size: vocab as i32,
        rms_norm_eps: gguf
            .get_f32(&key("attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-5),
        rope_theta: gguf.get_f32(&key("rope.freq_base")).unwrap_or(10_000.0),
        // llama.cpp permutes Q/K rows for rotation of interleaved pairs.
        rope_traditional: true,
        qk_permuted: true,
        rope_scaling,
        max_position_embeddings: gguf.get_u32(&key("context_length")).unwrap_or(4096) as usize,
        tie_word_embeddings: gguf.tensor("output.weight").is_none(),
        ..ModelArgs::default()
    })
}

/// GGUF tensor names → Hugging Face names (`blk.3.attn_q.weight` →
/// `model.layers.3.self_attn.q_proj.weight`). Unknown names pass through unchanged.
fn rename_gguf_tensors(tensors: HashMap<String, Array>) -> HashMap<String, Array> {
    tensors
        .into_iter()
        .map(|(name, array)| (hf_name(&name), array))
        .collect()
}

fn hf_name(name: &str) -> String {
    let (stem, suffix) = name.rsplit_once('.').unwrap_or((name, ""));
    let mapped = match stem {
        "token_embd" => "model.embed_tokens".to_string(),
        "output_norm" => "model.norm".to_string(),
        "output" => "lm_head".to_string(),
        _ => match stem
            .strip_prefix("blk.")
            .and_then(|rest| rest.split_once('.'))
        {
            Some((layer, part)) => {
                let part = match part {
                    "attn_norm" => "input_layernorm",
                    "ffn_norm" => "post_attention_layernorm",
                    "attn_q" => "self_attn.q_proj",
                    "attn_k" => "self_attn.k_proj",
                    "attn_v" => "self_attn.v_proj",
                    "attn_output" => "self_attn.o_proj",
                    "ffn_gate" => "mlp.gate_proj",
                    "ffn_up" => "mlp.up_proj",
                    "ffn_down" => "mlp.down_proj",
                    _ => return name.to_string(),
                };
                format!("model.layers.{layer}.{part}")
            }
            None => return name.to_string(),
        },
    };
    format!("{mapped}.{suffix}")
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

#[cfg(test)]
mod tests {
    use super::hf_name;

    #[test]
    fn gguf_names_map_to_hugging_face_names() {
        for (gguf, hf) in [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            (
                "blk.0.attn_q.weight",
                "model.layers.0.self_attn.q_proj.weight",
            ),
            (
                "blk.12.attn_output.scales",
                "model.layers.12.self_attn.o_proj.scales",
            ),
            (
                "blk.3.ffn_down.biases",
                "model.layers.3.mlp.down_proj.biases",
            ),
            (
                "blk.3.attn_norm.weight",
                "model.layers.3.input_layernorm.weight",
            ),
            (
                "blk.3.ffn_norm.weight",
                "model.layers.3.post_attention_layernorm.weight",
            ),
            ("blk.3.something_else.weight", "blk.3.something_else.weight"),
        ] {
            assert_eq!(hf_name(gguf), hf, "{gguf}");
        }
    }
}
