//! Qwen3: the Llama decoder with an RMS norm over each query and key head before RoPE.

use super::args::ModelArgs;
use super::config::Config;
use super::decoder::Layout;
use crate::error::Result;

pub const LAYOUT: Layout = Layout {
    qk_norm: true,
    ..Layout::LLAMA
};

pub fn args(c: &Config) -> Result<ModelArgs> {
    Ok(ModelArgs {
        rms_norm_eps: c.float_or("rms_norm_eps", 1e-6)?,
        ..c.common("qwen3", true)?
    })
}
