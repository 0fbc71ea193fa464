//! GPT-2: learned absolute positions instead of RoPE, layer norms with biases, a plain GELU
//! MLP (`c_fc`, `c_proj`), one fused `c_attn` projection, biases on every projection and the
//! head tied to the embeddings. Hugging Face checkpoints store the projections as Conv1D
//! (`[in, out]`); mlx-lm's folders as linear layers (`[out, in]`, names under `model.`).

use std::collections::HashMap;

use mlx_rs::Array;

use super::args::ModelArgs;
use super::config::Config;
use super::decoder::Layout;
use super::layers::{Activation, NormKind};
use crate::error::{EngineError, Result};

pub const LAYOUT: Layout = Layout {
    fused_qkv: true,
    gated: false,
    norm: NormKind::Layer,
    all_biases: true,
    learned_positions: true,
    act: Activation::GeluTanh,
    renames: &[
        ("model.h.", "model.layers."),
        (".attn.c_attn", ".self_attn.qkv_proj"),
        (".attn.c_proj", ".self_attn.o_proj"),
        (".mlp.c_fc", ".mlp.up_proj"),
        (".mlp.c_proj", ".mlp.down_proj"),
        (".ln_1.", ".input_layernorm."),
        (".ln_2.", ".post_attention_layernorm."),
        ("model.wte.", "model.embed_tokens."),
        ("model.wpe.", "model.embed_positions."),
        ("model.ln_f.", "model.norm."),
    ],
    ..Layout::LLAMA
};

pub fn args(c: &Config) -> Result<ModelArgs> {
    let hidden = c.int("n_embd")?;
    let heads = c.int("n_head")?;
    if heads <= 0 || hidden % heads != 0 {
        return Err(EngineError::invalid_model(
            c.path,
            format!("n_embd {hidden} does not split into n_head {heads} heads"),
        ));
    }
    Ok(ModelArgs {
        architecture: "gpt2".into(),
        hidden_size: hidden,
        intermediate_size: c.int_or("n_inner", 4 * hidden)?,
        num_hidden_layers: c.int("n_layer")?,
        num_attention_heads: heads,
        num_key_value_heads: heads,
        head_dim: hidden / heads,
        rope_dims: hidden / heads,
        vocab_size: c.int("vocab_size")?,
        rms_norm_eps: c.float_or("layer_norm_epsilon", 1e-5)?,
        max_position_embeddings: c.int_or("n_positions", 1024)? as usize,
        tie_word_embeddings: true,
        ..ModelArgs::default()
    })
}

/// Hugging Face's names and Conv1D weights (`h.0.attn.c_attn.weight` `[in, out]`, perhaps
/// under `transformer.`) → mlx-lm's (`model.h.0.attn.c_attn.weight` `[out, in]`); the causal
/// mask buffers and the tied head go.
pub fn sanitize(arrays: &mut HashMap<String, Array>) -> Result<()> {
    let names: Vec<String> = arrays
        .keys()
        .filter(|n| !n.starts_with("model."))
        .cloned()
        .collect();
    for name in names {
        let Some(a) = arrays.remove(&name) else {
            continue;
        };
        let bare = name.strip_prefix("transformer.").unwrap_or(&name);
        let buffer = bare.ends_with(".attn.bias") || bare.ends_with(".attn.masked_bias");
        if buffer || bare.starts_with("lm_head.") {
            continue;
        }
        let conv1d = [".c_attn.weight", ".c_proj.weight", ".c_fc.weight"]
            .iter()
            .any(|s| bare.ends_with(s));
        let a = if conv1d { a.t() } else { a };
        arrays.insert(format!("model.{bare}"), a);
    }
    Ok(())
}
