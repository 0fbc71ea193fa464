//! Model architectures.
//!
//! [`ModelArgs`] (`args.rs`) is the architecture's shape, read from GGUF metadata or a
//! `config.json` (`config.rs`). [`Weights`] (`weights.rs`) hands named tensors (Hugging Face
//! names) to an architecture's constructor and decides, once for all models, how each is
//! stored: dense or quantized, and in which float dtype. [`Model`] (`model.rs`) is a decoder
//! (`decoder.rs`, built from `layers.rs`, `moe.rs` for mixtures of experts and `rope.rs` for
//! RoPE scalings) laid out as its architecture says; `registry.rs` names the architectures,
//! each in its own short file.

pub mod adapter;
mod args;
pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod gemma2;
pub mod gemma3_text;
pub mod gpt2;
pub mod layers;
pub mod llama;
pub mod mixtral;
mod model;
pub mod moe;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod qwen3_moe;
mod registry;
pub mod rope;
mod weights;

pub use args::{ModelArgs, MoeArgs, Routing};
pub use model::Model;
pub use registry::{architecture_names, GGUF_ARCHITECTURES, SUPPORTED_ARCHITECTURES};
pub use rope::RopeScaling;
pub use weights::{QuantConfig, WeightFormat, Weights};
