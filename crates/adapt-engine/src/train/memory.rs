//! Memory before training: what the weights, adapters, optimizer state and activations of one
//! step will take, against what the machine can give; a batch size that fits, or a refusal
//! that says what to change. [`plan`] is a run's plan without training: trainable parameters
//! and the memory of a step at the batch size that fits.

use adapt_data::TokenCache;
use serde::Serialize;

use super::config::{OptimizerKind, TrainConfig};
use crate::adapters;
use crate::error::{EngineError, Result};
use crate::models::Model;

/// An estimate of one training step's peak memory, in bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MemoryEstimate {
    /// Rows passed through the model at once (the batch is kept by adding their gradients).
    pub batch_size: usize,
    pub seq_len: usize,
    pub weights: u64,
    /// Adapter weights, their gradients and the optimizer's state.
    pub adapters: u64,
    /// Activations kept for the backward pass.
    pub activations: u64,
    /// Logits and their gradient.
    pub logits: u64,
    pub total: u64,
    /// What MLX may use on this machine now.
    pub budget: u64,
}

impl MemoryEstimate {
    pub fn fits(&self) -> bool {
        self.total <= self.budget
    }
}

/// Estimates a step over `batch_size` rows of `seq_len` tokens.
pub fn estimate(
    model: &Model,
    config: &TrainConfig,
    trainable: usize,
    batch_size: usize,
    seq_len: usize,
    budget: u64,
) -> MemoryEstimate {
    let a = &model.args;
    let tokens = (batch_size * seq_len) as u64;
    let dtype_bytes = model.net().model.norm.weight.item_size().max(2) as u64;
    let states = match config.optimizer {
        OptimizerKind::Adam | OptimizerKind::AdamW => 2,
        OptimizerKind::Sgd => 1,
    };
    // Weights, gradients, optimizer states and the updated copy, all f32.
    let adapters = trainable as u64 * 4 * (2 + states);
    let (hidden, inter) = (a.hidden_size as u64, a.ffn_width_per_token() as u64);
    // Only the adapted blocks (the last `num_layers`) keep activations for the backward pass.
    let blocks = a.num_hidden_layers as u64;
    let layers = match u64::try_from(config.num_layers) {
        Ok(n) => n.min(blocks),
        Err(_) => blocks,
    };
    // The constants below are fitted to the peaks MLX's CPU backend measured over random
    // Llama shapes (hidden 128-576, MLP 384-1536, 2-8 layers, vocabularies of 1k-16k, 64-512
    // tokens a row) with every projection adapted; `tests/memory.rs` checks them.
    // Per token and layer: the block's input, norms, projections and MLP activations kept
    // for the backward pass.
    let per_token_layer = (7 * hidden + 5 * inter) * dtype_bytes;
    // Attention probabilities kept for the backward pass, per layer.
    let scores =
        batch_size as u64 * a.num_attention_heads as u64 * (seq_len * seq_len) as u64 * dtype_bytes;
    let activations = if config.grad_checkpoint {
        // Each block's input is kept; one block at a time is recomputed, with its gradients.
        tokens * hidden * dtype_bytes * layers
            + tokens * (13 * hidden + 7 * inter) * dtype_bytes
            + scores
    } else {
        // Every adapted block's, and while a block's gradients are evaluated together (the
        // default, `loss::GradEval::Queued`) more for its backward pass: 0.84–0.89 of a
        // block's on the shapes of tests/memory.rs, counted as 0.85.
        let block = tokens * per_token_layer + scores;
        layers * block + block * 17 / 20
    };
    // Logits in f32 and their gradient.
    let logits = tokens * a.vocab_size as u64 * 4 * 2;
    // Where quantized layers multiply by a dequantized copy (MLX's CPU backend), the copies of
    // the adapted blocks stay alive for the backward pass (one block's at a time under
    // checkpointing), and so does the head's.
    let copies = if crate::models::layers::dequantize_first() && model.is_quantized() {
        let (q_out, kv_out) = (
            (a.num_attention_heads * a.head_dim) as u64,
            (a.num_key_value_heads * a.head_dim) as u64,
        );
        let per_block = 2 * hidden * q_out + 2 * hidden * kv_out + 3 * hidden * inter;
        let outside = (model.n_params() as u64).saturating_sub(blocks * per_block);
        let kept = if config.grad_checkpoint { 1 } else { layers };
        (outside + kept * per_block) * dtype_bytes
    } else {
        0
    };
    let weights = model.nbytes() as u64 + copies;
    MemoryEstimate {
        batch_size,
        seq_len,
        weights,
        adapters,
        activations,
        logits,
        total: weights + adapters + activations + logits,
        budget,
    }
}

/// What MLX may use now: its own limit, or the memory the system has free plus what MLX
/// already holds, whichever is smaller; 90 % of it, to leave room for the rest of the system.
pub fn budget() -> u64 {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let active = mlx_rs::memory::active_memory().unwrap_or(0) as u64;
    let free = system.available_memory() + active;
    let limit = mlx_rs::memory::memory_limit().unwrap_or(usize::MAX) as u64;
    free.min(limit) / 10 * 9
}

/// What a run of `config` may use now: [`budget`], capped at its `memory_budget` when set.
pub fn run_budget(config: &TrainConfig) -> u64 {
    let free = budget();
    config.memory_budget.map_or(free, |cap| cap.min(free))
}

/// The largest batch size up to `config.batch_size` whose estimate fits, or the estimate for
/// one row when even that does not.
pub fn fit_batch(
    model: &Model,
    config: &TrainConfig,
    trainable: usize,
    seq_len: usize,
    budget: u64,
) -> std::result::Result<MemoryEstimate, MemoryEstimate> {
    let mut batch = config.batch_size;
    loop {
        let e = estimate(model, config, trainable, batch, seq_len, budget);
        if e.fits() {
            return Ok(e);
        }
        if batch == 1 {
            return Err(e);
        }
        batch = batch.div_ceil(2);
    }
}

/// What a run would take before it starts: its trainable parameters and memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainPlan {
    pub trainable_parameters: usize,
    /// Examples in the training split.
    pub examples: usize,
    /// The longest example, capped at `max_seq_length` (what the estimate assumes).
    pub seq_len: usize,
    /// The estimate at the batch size that fits (`memory.batch_size`).
    pub memory: MemoryEstimate,
    /// Set when the configured batch size would not fit.
    pub batch_size_note: Option<String>,
}

/// Plans a run of `config` on `train` without training: attaches the adapters to count what
/// trains, estimates the memory of one step, then takes the adapters off again. Refuses, as
/// `train` would, when not even a batch of one fits.
pub fn plan(lm: &mut Model, train: &TokenCache, config: &TrainConfig) -> Result<TrainPlan> {
    config.validate("training configuration")?;
    adapters::remove(lm);
    let trainable = adapters::attach(lm, &config.adapter(), config.seed)?;
    let seq_len = longest(train, config);
    let fitted = fit_memory(lm, config, trainable, seq_len);
    adapters::remove(lm);
    let (memory, batch_size_note) = fitted?;
    Ok(TrainPlan {
        trainable_parameters: trainable,
        examples: train.len(),
        seq_len,
        memory,
        batch_size_note,
    })
}

/// The longest training example, capped at the configured length.
pub(crate) fn longest(train: &TokenCache, config: &TrainConfig) -> usize {
    (0..train.len())
        .map(|i| train.length(i))
        .max()
        .unwrap_or(1)
        .min(config.max_seq_length)
}

/// The estimate at the largest batch size up to the configured one that fits (with a note when
/// it is lower), or an error that says what to change.
pub(crate) fn fit_memory(
    lm: &Model,
    config: &TrainConfig,
    trainable: usize,
    seq_len: usize,
) -> Result<(MemoryEstimate, Option<String>)> {
    let budget = run_budget(config);
    match fit_batch(lm, config, trainable, seq_len, budget) {
        Ok(e) if e.batch_size == config.batch_size => Ok((e, None)),
        Ok(e) => {
            let full = estimate(lm, config, trainable, config.batch_size, seq_len, budget);
            let note = format!(
                "batch size {} would need about {} MiB, more than the {} MiB available; passing {} \
                 rows at a time and adding their gradients, so the batch stays {}",
                config.batch_size,
                full.total >> 20,
                budget >> 20,
                e.batch_size,
                config.batch_size
            );
            Ok((e, Some(note)))
        }
        Err(e) => Err(EngineError::InvalidRequest(format!(
            "training needs about {} MiB even with batch size 1 at {} tokens (weights {} MiB, \
             activations {} MiB, logits {} MiB) but about {} MiB is available; lower \
             max_seq_length, adapt fewer layers (num_layers), turn on grad_checkpoint, or use a \
             quantized model",
            e.total >> 20,
            e.seq_len,
            e.weights >> 20,
            e.activations >> 20,
            e.logits >> 20,
            e.budget >> 20
        ))),
    }
}
