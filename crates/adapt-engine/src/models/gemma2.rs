//! Gemma 2: sandwich norms stored as `w - 1`, GELU, embeddings scaled by √hidden, scores
//! scaled by `query_pre_attn_scalar` and soft-capped, soft-capped logits, tied head.

use super::args::ModelArgs;
use super::config::Config;
use super::decoder::Layout;
use super::layers::Activation;
use crate::error::Result;

pub const LAYOUT: Layout = Layout {
    sandwich_norms: true,
    norm_offset: 1.0,
    act: Activation::GeluTanh,
    ..Layout::LLAMA
};

pub fn args(c: &Config) -> Result<ModelArgs> {
    let common = c.common("gemma2", true)?;
    Ok(ModelArgs {
        rms_norm_eps: c.float_or("rms_norm_eps", 1e-6)?,
        tie_word_embeddings: true,
        embed_scale: Some((common.hidden_size as f32).sqrt()),
        query_pre_attn_scalar: Some(c.float_or("query_pre_attn_scalar", 144.0)?),
        attn_logit_softcapping: Some(c.float_or("attn_logit_softcapping", 50.0)?),
        final_logit_softcapping: Some(c.float_or("final_logit_softcapping", 30.0)?),
        ..common
    })
}
