//! Gemma 3 (text): Gemma's sandwich norms and scaled embeddings, q/k norms, and local
//! sliding-window layers (their own RoPE base) between every `sliding_window_pattern`-th
//! global layer.

use super::args::ModelArgs;
use super::config::Config;
use super::decoder::Layout;
use super::layers::Activation;
use crate::error::Result;

pub const LAYOUT: Layout = Layout {
    qk_norm: true,
    sandwich_norms: true,
    norm_offset: 1.0,
    act: Activation::GeluTanh,
    ..Layout::LLAMA
};

pub fn args(c: &Config) -> Result<ModelArgs> {
    let common = c.common("gemma3_text", true)?;
    let hidden = common.hidden_size as f32;
    Ok(ModelArgs {
        rms_norm_eps: c.float_or("rms_norm_eps", 1e-6)?,
        // The reference rounds √hidden to bfloat16 before scaling.
        embed_scale: Some(half_round_bf16(hidden.sqrt())),
        query_pre_attn_scalar: Some(c.float_or("query_pre_attn_scalar", 256.0)?),
        sliding_window: Some(c.opt_int("sliding_window")?.unwrap_or(512) as usize),
        sliding_window_pattern: Some(c.opt_int("sliding_window_pattern")?.unwrap_or(6) as usize),
        rope_local_base_freq: Some(c.float_or("rope_local_base_freq", 10_000.0)?),
        rope_theta: c.float_or("rope_theta", 1_000_000.0)?,
        ..common
    })
}

/// `x` rounded to the nearest bfloat16 (ties to even).
fn half_round_bf16(x: f32) -> f32 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) & 0xffff_0000;
    f32::from_bits(rounded)
}
