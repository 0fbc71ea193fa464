//! Arguments several commands share: the model to use ([`ModelArg`], which falls back on the
//! bundled model) and the sampling settings of generation ([`SamplingArgs`]).

use std::path::PathBuf;

use adapt_api::{GenerateParams, SamplingParams};
use clap::Args;

/// The model that set-up installs into the models cache.
pub const BUNDLED_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Which model to use.
#[derive(Args, Clone)]
pub struct ModelArg {
    /// A GGUF file or a model folder (config.json + safetensors) [default: the bundled
    /// SmolLM2 in the models cache].
    #[arg(long, short, env = "ADAPT_MODEL")]
    pub model: Option<PathBuf>,
}

impl ModelArg {
    /// The file named, else the bundled model in the models cache the API resolves.
    pub fn path(&self, adapt: &adapt_api::Adapt) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(|| adapt.models_dir(None).join(BUNDLED_MODEL))
    }
}

/// Sampling and length settings shared by generate and chat.
#[derive(Args, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// 0 is greedy; higher is more random.
    #[arg(long, visible_alias = "temp", default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// 0 turns top-k off.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    #[arg(long)]
    seed: Option<u64>,
    /// Stop before this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
}

impl SamplingArgs {
    /// The generation parameters these settings make.
    pub fn params(&self) -> GenerateParams {
        GenerateParams {
            max_tokens: self.max_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_p: self.top_p,
                top_k: self.top_k,
                min_p: self.min_p,
                repetition_penalty: self.repetition_penalty,
                seed: self.seed,
                ..SamplingParams::default()
            },
            stop: self.stop.clone(),
            ..GenerateParams::default()
        }
    }
}

/// Where KV caches may live (each kept as a setting once given).
#[derive(Args, Clone)]
pub struct CacheBudgetArgs {
    /// Memory for KV caches (every conversation's and the server's prompt cache), in MB; the
    /// least recently used cache leaves memory first.
    #[arg(long)]
    pub cache_memory_mb: Option<u64>,
    /// Disk for saved KV caches, in MB; the least recently used file is removed first.
    #[arg(long)]
    pub cache_disk_mb: Option<u64>,
}

impl CacheBudgetArgs {
    /// Saves the budgets given (in bytes) as settings.
    pub fn apply(&self, adapt: &adapt_api::Adapt) -> Result<(), adapt_api::ApiError> {
        if self.cache_memory_mb.is_none() && self.cache_disk_mb.is_none() {
            return Ok(());
        }
        let mb = |v: Option<u64>| v.map(|m| m << 20);
        adapt
            .set_cache_budgets(mb(self.cache_memory_mb), mb(self.cache_disk_mb))
            .map(|_| ())
    }
}

/// A `list` subcommand's flags.
#[derive(Args, Clone)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A `show ID` subcommand's argument and flags.
#[derive(Args, Clone)]
pub struct ShowArgs {
    /// The id (as the list subcommand prints it).
    pub id: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
