//! Adapt's engine: the only crate that links MLX (through `mlx-rs`).
//!
//! Data flows one way: [`load::load`] reads a model file into a [`models::Model`] plus its
//! tokenizer and chat template; [`generate::generate`] runs a prompt through the model,
//! reusing and extending a [`generate::SequenceCache`] (one [`cache::KvCache`] per layer), and
//! streams text to a [`generate::TokenSink`] while [`sample::Sampler`] picks each token.
//! [`device`] reports the backend and memory.
//!
//! MLX is not thread-safe: everything in this crate must be used from the one thread that owns
//! the engine (the API crate's engine thread).

pub mod adapters;
pub mod cache;
pub mod chat;
pub mod chat_bench;
pub mod convert;
pub mod device;
pub mod distributed;
pub mod error;
pub mod generate;
pub mod graph;
pub mod isolate;
pub mod load;
pub mod models;
pub mod prompt_cache;
pub mod quantize;
pub mod runtime;
pub mod sample;
pub mod save;
pub mod testing;
pub mod train;

/// MLX itself, for tests and tools that inspect arrays; shells use the API crate instead.
pub use mlx_rs;

pub use adapt_text::{ChatMessage, ChatTemplate, Tokenizer};
pub use cache::{KvCache, KvQuant};
pub use chat::{
    prompt_tokens, CacheKey, ChatOptions, ChatPool, ChatSession, Embedder, Overflow, PrefixTrie,
    Routed, Routing, Topic, TopicChoice, TopicSettings, TopicSimilarity, Topics,
};
pub use device::{
    choose_device, chosen_device, Backend, DeviceChoice, DevicePreference, DeviceReport,
};
pub use error::{EngineError, Result};
pub use generate::{
    generate, GenerateParams, Generation, GenerationStats, SequenceCache, StopReason, TokenLogprob,
    TokenSink,
};
pub use load::{load, LoadOptions, LoadedModel, ModelInfo};
pub use models::{Model, ModelArgs, WeightFormat};
pub use sample::{Sampler, SamplingParams};
