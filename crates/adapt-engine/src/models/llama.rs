//! Llama 2 / 3, Mistral and SmolLM: the plain pre-norm decoder with grouped-query attention,
//! SwiGLU and optional RoPE scaling (linear, llama3, yarn).

use super::args::ModelArgs;
use super::config::Config;
use super::decoder::Layout;
use crate::error::Result;

pub const LAYOUT: Layout = Layout::LLAMA;

pub fn args(c: &Config, model_type: &str) -> Result<ModelArgs> {
    c.common(model_type, true)
}
