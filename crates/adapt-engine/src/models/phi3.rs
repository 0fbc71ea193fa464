//! Phi-3: the Llama decoder with fused projections (`qkv_proj`, `gate_up_proj`), partial
//! rotary embeddings and LongRoPE scaling.

use super::args::ModelArgs;
use super::config::Config;
use super::decoder::Layout;
use crate::error::Result;

pub const LAYOUT: Layout = Layout {
    fused_qkv: true,
    fused_gate_up: true,
    ..Layout::LLAMA
};

pub fn args(c: &Config) -> Result<ModelArgs> {
    c.common("phi3", false)
}
