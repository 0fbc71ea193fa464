//! Qwen2 / Qwen2.5: the Llama decoder with biases on the query, key and value projections.

use super::args::ModelArgs;
use super::config::Config;
use super::decoder::Layout;
use crate::error::Result;

pub const LAYOUT: Layout = Layout::LLAMA;

pub fn args(c: &Config) -> Result<ModelArgs> {
    Ok(ModelArgs {
        attention_bias: true,
        rms_norm_eps: c.float_or("rms_norm_eps", 1e-6)?,
        ..c.common("qwen2", true)?
    })
}
