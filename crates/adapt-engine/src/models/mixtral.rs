//! Mixtral: the Llama decoder whose MLP is a mixture of experts — each token goes to the
//! experts with the `k` largest router logits, weighted by a softmax over those logits.

use std::collections::HashMap;
use std::path::Path;

use mlx_rs::Array;

use super::args::{ModelArgs, MoeArgs, Routing};
use super::config::Config;
use super::decoder::Layout;
use super::moe::stack_layer_experts;
use super::rope::RopeScaling;
use crate::error::Result;

pub const LAYOUT: Layout = Layout {
    renames: &[(".block_sparse_moe.", ".mlp.")],
    ..Layout::LLAMA
};

pub fn args(c: &Config) -> Result<ModelArgs> {
    let common = c.common("mixtral", false)?;
    Ok(ModelArgs {
        // As the reference: heads split the hidden size, and no RoPE scaling.
        head_dim: common.hidden_size / common.num_attention_heads,
        rope_dims: common.hidden_size / common.num_attention_heads,
        rope_scaling: RopeScaling::None,
        rope_theta: c.float_or("rope_theta", 1e6)?,
        moe: Some(MoeArgs {
            num_experts: c.int_or("num_local_experts", 8)?,
            experts_per_token: c.int_or("num_experts_per_tok", 2)?,
            intermediate_size: common.intermediate_size,
            routing: Routing::TopKSoftmax,
            sparse_step: 1,
            dense_layers: Vec::new(),
        }),
        ..common
    })
}

/// Hugging Face's experts (`block_sparse_moe.experts.E.w1` gate, `w2` down, `w3` up) stacked
/// as mlx-lm stores them (`block_sparse_moe.switch_mlp.gate_proj`, …).
pub fn sanitize(args: &ModelArgs, path: &Path, arrays: &mut HashMap<String, Array>) -> Result<()> {
    let projections = [("w1", "gate_proj"), ("w2", "down_proj"), ("w3", "up_proj")];
    stack_layer_experts(args, path, arrays, "block_sparse_moe", &projections)
}
