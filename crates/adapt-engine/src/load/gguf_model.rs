//! A GGUF model in Hugging Face terms, architecture by architecture: `{arch}.*` metadata (and
//! the RoPE factor tensors) → the `config.json` the same model has as a folder, read by the
//! same per-architecture code as folders and written by conversion; llama.cpp's tensor names
//! → the decoder's; and llama.cpp's storage conventions undone where the decoder expects
//! Hugging Face's (Gemma's norms stored as `1 + w`, a tied head stored twice). Llama-family
//! files keep llama.cpp's Q/K row order (see [`super::layout`]); llama.cpp permutes Q/K rows
//! for those only (`convert_hf_to_gguf.py`'s `LlamaModel`), the others use RoPE on halves.

use std::collections::HashMap;

use adapt_gguf::{GgufArray, GgufFile};
use mlx_rs::{Array, Dtype};
use serde_json::{json, Map, Value};

use crate::error::{EngineError, Result};
use crate::models::moe::stack_layer_experts;
use crate::models::{ModelArgs, RopeScaling, GGUF_ARCHITECTURES};

/// Llama-family architectures, whose Q/K rows llama.cpp permutes for RoPE on pairs.
const PERMUTED: &[&str] = &["llama", "mistral", "smollm"];

/// The file's architecture, if Adapt reads it.
pub fn architecture(gguf: &GgufFile) -> Result<&str> {
    let arch = gguf.architecture().unwrap_or("(none)");
    if !GGUF_ARCHITECTURES.contains(&arch) {
        return Err(EngineError::UnsupportedArchitecture {
            path: gguf.path().to_path_buf(),
            architecture: arch.to_string(),
            supported: GGUF_ARCHITECTURES,
        });
    }
    Ok(arch)
}

/// Tensors read by MLX (llama.cpp's names) → the decoder's names and Hugging Face's values,
/// with the model's shape.
pub fn prepare(
    gguf: &GgufFile,
    tensors: HashMap<String, Array>,
) -> Result<(ModelArgs, HashMap<String, Array>)> {
    let arch = architecture(gguf)?;
    let gemma = arch.starts_with("gemma");
    let mut arrays = HashMap::with_capacity(tensors.len());
    for (name, a) in tensors {
        let name = hf_name(arch, &name);
        // llama.cpp stores Gemma's norms as the scale itself, `1 + w`.
        let a = if gemma && name.ends_with("norm.weight") {
            a.as_dtype(Dtype::Float32)?.subtract(Array::from_f32(1.0))?
        } else {
            a
        };
        arrays.insert(name, a);
    }
    let args = gguf_args(gguf, &arrays)?;
    if args.moe.is_some() {
        // Older Mixtral files store each expert on its own (`blk.0.ffn_gate.3.weight`).
        let projections = ["gate_proj", "up_proj", "down_proj"].map(|p| (p, p));
        stack_layer_experts(&args, gguf.path(), &mut arrays, "mlp", &projections)?;
    }
    if args.tie_word_embeddings {
        arrays.retain(|name, _| !name.starts_with("lm_head."));
    }
    Ok((args, arrays))
}

/// The model's shape: its `config.json` read as a folder's is, in llama.cpp's Q/K row order
/// for the Llama family.
fn gguf_args(gguf: &GgufFile, arrays: &HashMap<String, Array>) -> Result<ModelArgs> {
    let config = hf_config(gguf, arrays)?;
    let mut args = ModelArgs::from_config(gguf.path(), &config)?;
    let arch = architecture(gguf)?;
    if PERMUTED.contains(&arch) {
        args.rope_traditional = true;
        args.qk_permuted = true;
    }
    if config.get("rope_scaling").is_none_or(Value::is_null) {
        if let Some(factors) = rope_factors(gguf, arrays, "rope_freqs.weight")? {
            args.rope_scaling = RopeScaling::Factors { factors };
        }
    }
    Ok(args)
}

/// The metadata of one architecture, `{arch}.*`.
struct Meta<'a> {
    gguf: &'a GgufFile,
    arch: &'a str,
}

impl Meta<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }

    fn u32(&self, k: &str) -> Option<u32> {
        self.gguf.get_u32(&self.key(k))
    }

    fn f32(&self, k: &str) -> Option<f32> {
        self.gguf.get_f32(&self.key(k))
    }

    fn need(&self, k: &str) -> Result<u32> {
        self.u32(k).ok_or_else(|| {
            EngineError::invalid_model(
                self.gguf.path(),
                format!("metadata '{}' is missing", self.key(k)),
            )
        })
    }
}

/// The `config.json` of the model in `gguf` (whose tensors, under the decoder's names but
/// for the RoPE factors, are `arrays`).
pub fn hf_config(gguf: &GgufFile, arrays: &HashMap<String, Array>) -> Result<Value> {
    let arch = architecture(gguf)?;
    let m = Meta { gguf, arch };
    let path = gguf.path();
    let hidden = m.need("embedding_length")?;
    let heads = m.need("attention.head_count")?;
    if heads == 0 || hidden % heads != 0 && m.u32("attention.key_length").is_none() {
        return Err(EngineError::invalid_model(
            path,
            format!("{hidden} hidden units do not split into {heads} heads"),
        ));
    }
    let vocab = m
        .u32("vocab_size")
        .or_else(|| {
            gguf.get_string_array("tokenizer.ggml.tokens")
                .map(|t| t.len() as u32)
        })
        .or_else(|| {
            gguf.tensor("token_embd.weight")?
                .dims
                .get(1)
                .map(|&n| n as u32)
        })
        .ok_or_else(|| EngineError::invalid_model(path, "the vocabulary size is missing"))?;
    let model_type = model_type(&m);
    let mut c = if arch == "gpt2" {
        json!({
            "n_embd": hidden,
            "n_head": heads,
            "n_layer": m.need("block_count")?,
            "n_positions": m.u32("context_length").unwrap_or(1024),
            "n_ctx": m.u32("context_length").unwrap_or(1024),
            "n_inner": m.u32("feed_forward_length").unwrap_or(4 * hidden),
            "layer_norm_epsilon": m.f32("attention.layer_norm_epsilon").unwrap_or(1e-5),
        })
    } else {
        llama_config(&m, hidden, heads)?
    };
    let map = c.as_object_mut().expect("an object");
    map.insert("model_type".into(), model_type.into());
    map.insert("architectures".into(), json!([class_name(model_type)]));
    map.insert("vocab_size".into(), vocab.into());
    let tied = !arrays.contains_key("lm_head.weight");
    map.insert("tie_word_embeddings".into(), tied.into());
    map.insert("rope_scaling".into(), rope_scaling(&m, arrays)?);
    architecture_settings(&m, map, arrays)?;
    Ok(c)
}

/// The settings every Llama-style architecture has.
fn llama_config(m: &Meta, hidden: u32, heads: u32) -> Result<Value> {
    let head_dim = m.u32("attention.key_length").unwrap_or(hidden / heads);
    let mut c = json!({
        "hidden_size": hidden,
        "intermediate_size": m.u32("feed_forward_length")
            .or_else(|| m.u32("expert_feed_forward_length"))
            .unwrap_or(0),
        "num_hidden_layers": m.need("block_count")?,
        "num_attention_heads": heads,
        "num_key_value_heads": m.u32("attention.head_count_kv").unwrap_or(heads),
        "head_dim": head_dim,
        "rms_norm_eps": m.f32("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        "rope_theta": m.f32("rope.freq_base").unwrap_or(10_000.0),
        "max_position_embeddings": m.u32("context_length").unwrap_or(4096),
    });
    if let Some(dims) = m
        .u32("rope.dimension_count")
        .filter(|&d| d > 0 && d < head_dim)
    {
        c["partial_rotary_factor"] = json!(dims as f64 / head_dim as f64);
    }
    Ok(c)
}

/// The `model_type` a GGUF architecture is.
fn model_type(m: &Meta) -> &'static str {
    match m.arch {
        "llama" | "smollm" if m.u32("expert_count").unwrap_or(0) > 0 => "mixtral",
        "llama" | "smollm" => "llama",
        "mistral" => "mistral",
        "qwen2" => "qwen2",
        "qwen3" => "qwen3",
        "qwen3moe" => "qwen3_moe",
        "phi3" => "phi3",
        "gemma2" => "gemma2",
        "gemma3" => "gemma3_text",
        _ => "gpt2",
    }
}

/// The Transformers class of a `model_type`, for `config.json`'s `architectures`.
fn class_name(model_type: &str) -> &'static str {
    match model_type {
        "mixtral" => "MixtralForCausalLM",
        "mistral" => "MistralForCausalLM",
        "qwen2" => "Qwen2ForCausalLM",
        "qwen3" => "Qwen3ForCausalLM",
        "qwen3_moe" => "Qwen3MoeForCausalLM",
        "phi3" => "Phi3ForCausalLM",
        "gemma2" => "Gemma2ForCausalLM",
        "gemma3_text" => "Gemma3ForCausalLM",
        "gpt2" => "GPT2LMHeadModel",
        _ => "LlamaForCausalLM",
    }
}

/// What only some architectures have: experts, soft caps, sliding windows, attention scales.
fn architecture_settings(
    m: &Meta,
    c: &mut Map<String, Value>,
    arrays: &HashMap<String, Array>,
) -> Result<()> {
    let layers = m.u32("block_count").unwrap_or(0);
    let mut set = |k: &str, v: Value| {
        c.insert(k.into(), v);
    };
    if let Some(experts) = m.u32("expert_count").filter(|&n| n > 0) {
        let used = m.need("expert_used_count")?;
        if m.arch == "qwen3moe" {
            set("num_experts", experts.into());
            set("num_experts_per_tok", used.into());
            let width = m.need("expert_feed_forward_length")?;
            set("moe_intermediate_size", width.into());
            let norm = m.gguf.get_bool(&m.key("expert_weights_norm"));
            set("norm_topk_prob", norm.unwrap_or(true).into());
            set("decoder_sparse_step", 1.into());
            let dense: Vec<u32> = (0..layers)
                .filter(|l| !arrays.contains_key(&format!("model.layers.{l}.mlp.gate.weight")))
                .collect();
            set("mlp_only_layers", dense.into());
        } else {
            set("num_local_experts", experts.into());
            set("num_experts_per_tok", used.into());
        }
    }
    if m.arch.starts_with("gemma") {
        let heads = m.need("attention.head_count")?;
        let hidden = m.need("embedding_length")?;
        let head_dim = m.u32("attention.key_length").unwrap_or(hidden / heads);
        set(
            "query_pre_attn_scalar",
            query_pre_attn_scalar(m, layers, hidden / heads, head_dim).into(),
        );
        if let Some(window) = m.u32("attention.sliding_window") {
            set("sliding_window", window.into());
        }
        for cap in ["attn_logit_softcapping", "final_logit_softcapping"] {
            if let Some(v) = m.f32(cap) {
                set(cap, v.into());
            }
        }
    }
    if m.arch == "gemma3" {
        set("sliding_window_pattern", sliding_window_pattern(m)?.into());
        let local = m.f32("rope.freq_base_swa").unwrap_or(10_000.0);
        set("rope_local_base_freq", local.into());
        set("rope_theta", m.f32("rope.freq_base").unwrap_or(1e6).into());
    }
    if m.arch == "phi3" {
        if let Some(original) = m.u32("rope.scaling.original_context_length") {
            set("original_max_position_embeddings", original.into());
        }
    }
    Ok(())
}

/// Gemma's attention scale base, as llama.cpp decides it: `{arch}.attention.scale` when the
/// file states it, else hidden / heads for the 27B models (46 layers for Gemma 2, 62 for
/// Gemma 3), else the head size.
fn query_pre_attn_scalar(m: &Meta, layers: u32, per_head: u32, head_dim: u32) -> f32 {
    if let Some(scale) = m.f32("attention.scale").filter(|s| *s > 0.0) {
        return scale.powi(-2);
    }
    let large = matches!((m.arch, layers), ("gemma2", 46) | ("gemma3", 62));
    if large {
        per_head as f32
    } else {
        head_dim as f32
    }
}

/// Gemma 3's period of global layers: `attention.sliding_window_pattern` (a period, or one
/// flag per layer that must repeat with one), else llama.cpp's 6.
fn sliding_window_pattern(m: &Meta) -> Result<u32> {
    let key = m.key("attention.sliding_window_pattern");
    let Some(value) = m.gguf.get(&key) else {
        return Ok(6);
    };
    if let Some(period) = value.as_u64() {
        return Ok(period as u32);
    }
    let flags: Vec<i64> = match value.as_array() {
        Some(GgufArray::Bool(v)) => v.iter().map(|&b| i64::from(b)).collect(),
        Some(a) => a.to_i64_vec().unwrap_or_default(),
        None => Vec::new(),
    };
    let period = flags.iter().position(|&f| f == 0).map(|i| i as u32 + 1);
    match period {
        Some(p)
            if (0..flags.len()).all(|i| (flags[i] == 0) == (i as u32 + 1).is_multiple_of(p)) =>
        {
            Ok(p)
        }
        _ => Err(EngineError::invalid_model(
            m.gguf.path(),
            format!("metadata '{key}' is not a repeating pattern of sliding-window layers"),
        )),
    }
}

/// `rope_scaling` as `config.json` states it: from `{arch}.rope.scaling.*`, Phi-3's LongRoPE
/// factor tensors, or Llama 3's `rope_freqs` when they are a Llama 3 setting.
fn rope_scaling(m: &Meta, arrays: &HashMap<String, Array>) -> Result<Value> {
    let factor = m.f32("rope.scaling.factor").unwrap_or(1.0);
    let original = m.u32("rope.scaling.original_context_length");
    let long = rope_factors(m.gguf, arrays, "rope_factors_long.weight")?;
    Ok(match m.gguf.get_str(&m.key("rope.scaling.type")) {
        _ if long.is_some() => {
            let short = rope_factors(m.gguf, arrays, "rope_factors_short.weight")?;
            json!({"type": "longrope", "long_factor": long, "short_factor": short})
        }
        None | Some("none") => match rope_factors(m.gguf, arrays, "rope_freqs.weight")? {
            Some(factors) => llama3_setting(m, &factors).unwrap_or(Value::Null),
            None => Value::Null,
        },
        Some("linear") => json!({"type": "linear", "factor": factor}),
        Some("yarn") => {
            let mut yarn = json!({"type": "yarn", "factor": factor});
            if let Some(original) = original {
                yarn["original_max_position_embeddings"] = original.into();
            }
            for (key, name) in [
                ("yarn_beta_fast", "beta_fast"),
                ("yarn_beta_slow", "beta_slow"),
            ] {
                if let Some(v) = m.f32(&format!("rope.scaling.{key}")) {
                    yarn[name] = v.into();
                }
            }
            if let Some(log_mul) = m.f32("rope.scaling.yarn_log_multiplier") {
                yarn["mscale_all_dim"] = (log_mul / 0.1).into();
            }
            yarn
        }
        Some(other) => {
            return Err(EngineError::invalid_model(
                m.gguf.path(),
                format!(
                    "RoPE scaling '{other}' ({}) is not supported; supported: none, linear, \
                     yarn, and per-frequency factors",
                    m.key("rope.scaling.type")
                ),
            ))
        }
    })
}

/// The values of the small f32 tensor `name` (per-frequency RoPE factors), if present.
fn rope_factors(
    gguf: &GgufFile,
    arrays: &HashMap<String, Array>,
    name: &str,
) -> Result<Option<Vec<f32>>> {
    let Some(a) = arrays.get(name) else {
        return Ok(None);
    };
    let a = a.as_dtype(Dtype::Float32)?;
    a.eval()?;
    let values = a.try_as_slice::<f32>().map_err(|e| {
        EngineError::invalid_model(gguf.path(), format!("tensor '{name}' is unreadable: {e}"))
    })?;
    Ok(Some(values.to_vec()))
}

/// The Llama 3 `rope_scaling` whose per-pair factors (a `rope_freqs` tensor, as llama.cpp
/// stores Llama 3.1 / 3.2 scaling) are `factors`, if they are one.
fn llama3_setting(m: &Meta, factors: &[f32]) -> Option<Value> {
    let heads = m.u32("attention.head_count")?;
    let head_dim = (m.u32("rope.dimension_count"))
        .or_else(|| m.u32("attention.key_length"))
        .or_else(|| Some(m.u32("embedding_length")? / heads))?;
    let base = m.f32("rope.freq_base").unwrap_or(10_000.0);
    match RopeScaling::llama3_from_factors(factors, head_dim as i32, base)? {
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => Some(json!({
            "rope_type": "llama3",
            "factor": factor,
            "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original_max_position_embeddings,
        })),
        _ => None,
    }
}

/// llama.cpp's tensor name → the decoder's (`blk.3.attn_q.weight` →
/// `model.layers.3.self_attn.q_proj.weight`); unknown names pass through unchanged.
pub fn hf_name(arch: &str, name: &str) -> String {
    let (stem, suffix) = name.rsplit_once('.').unwrap_or((name, ""));
    let gemma = arch.starts_with("gemma");
    let mapped = match stem {
        "token_embd" => "model.embed_tokens".to_string(),
        "position_embd" => "model.embed_positions".to_string(),
        "output_norm" => "model.norm".to_string(),
        "output" => "lm_head".to_string(),
        _ => {
            let Some((layer, part)) = stem
                .strip_prefix("blk.")
                .and_then(|rest| rest.split_once('.'))
            else {
                return name.to_string();
            };
            let part = match part {
                "attn_norm" => "input_layernorm",
                "ffn_norm" if gemma => "pre_feedforward_layernorm",
                "ffn_norm" => "post_attention_layernorm",
                "post_attention_norm" => "post_attention_layernorm",
                "post_ffw_norm" => "post_feedforward_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_qkv" => "self_attn.qkv_proj",
                "attn_output" => "self_attn.o_proj",
                "attn_q_norm" => "self_attn.q_norm",
                "attn_k_norm" => "self_attn.k_norm",
                "ffn_gate" => "mlp.gate_proj",
                // Phi-3 stores gate and up in one matrix, gate first.
                "ffn_up" if arch == "phi3" => "mlp.gate_up_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                "ffn_gate_inp" => "mlp.gate",
                "ffn_gate_exps" => "mlp.switch_mlp.gate_proj",
                "ffn_up_exps" => "mlp.switch_mlp.up_proj",
                "ffn_down_exps" => "mlp.switch_mlp.down_proj",
                _ => {
                    return expert_name(layer, part)
                        .map_or_else(|| name.to_string(), |n| format!("{n}.{suffix}"))
                }
            };
            format!("model.layers.{layer}.{part}")
        }
    };
    format!("{mapped}.{suffix}")
}

/// An expert stored on its own (`ffn_gate.3` of layer `layer`, older Mixtral files) under
/// Hugging Face's name (`model.layers.L.mlp.experts.3.gate_proj`).
fn expert_name(layer: &str, part: &str) -> Option<String> {
    let (proj, expert) = part.split_once('.')?;
    let proj = match proj {
        "ffn_gate" => "gate_proj",
        "ffn_up" => "up_proj",
        "ffn_down" => "down_proj",
        _ => return None,
    };
    expert.parse::<u32>().ok()?;
    Some(format!("model.layers.{layer}.mlp.experts.{expert}.{proj}"))
}

#[cfg(test)]
mod tests;
