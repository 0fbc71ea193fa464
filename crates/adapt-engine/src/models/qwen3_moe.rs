//! Qwen3-MoE: Qwen3's attention (q/k norms) with mixture-of-experts MLPs — a softmax over all
//! experts, the `k` most probable taken (renormalized when `norm_topk_prob`); layers listed in
//! `mlp_only_layers`, or off the `decoder_sparse_step`, keep a dense MLP.

use std::collections::HashMap;
use std::path::Path;

use mlx_rs::Array;

use super::args::{ModelArgs, MoeArgs, Routing};
use super::config::Config;
use super::decoder::Layout;
use super::moe::stack_layer_experts;
use crate::error::Result;

pub const LAYOUT: Layout = super::qwen3::LAYOUT;

pub fn args(c: &Config) -> Result<ModelArgs> {
    Ok(ModelArgs {
        rms_norm_eps: c.float_or("rms_norm_eps", 1e-6)?,
        moe: Some(MoeArgs {
            num_experts: c.int("num_experts")?,
            experts_per_token: c.int("num_experts_per_tok")?,
            intermediate_size: c.int("moe_intermediate_size")?,
            routing: Routing::SoftmaxTopK {
                normalize: c.bool_or("norm_topk_prob", false)?,
            },
            sparse_step: c.int_or("decoder_sparse_step", 1)?,
            dense_layers: c.int_list("mlp_only_layers")?,
        }),
        ..c.common("qwen3_moe", false)?
    })
}

/// Hugging Face's experts (`mlp.experts.E.up_proj`, …) stacked as mlx-lm stores them
/// (`mlp.switch_mlp.up_proj`, …).
pub fn sanitize(args: &ModelArgs, path: &Path, arrays: &mut HashMap<String, Array>) -> Result<()> {
    let projections = ["gate_proj", "up_proj", "down_proj"].map(|p| (p, p));
    stack_layer_experts(args, path, arrays, "mlp", &projections)
}
