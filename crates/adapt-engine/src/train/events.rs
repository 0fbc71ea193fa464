//! What a training run streams and how it ends: [`TrainEvent`] (started, calibrated, a
//! report, an evaluation, a checkpoint, a micro-batch resize, memory) and [`TrainOutcome`].

use std::path::PathBuf;

use serde::Serialize;

use super::memory::MemoryEstimate;
use super::profile::{MemoryProfile, MemorySample};
use super::resize::BatchResize;

/// Figures of one report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainReport {
    pub step: u64,
    pub total_steps: u64,
    /// Epochs done, fractional.
    pub epoch: f64,
    /// Mean training loss since the last report.
    pub train_loss: f64,
    pub learning_rate: f64,
    pub tokens_per_second: f64,
    pub iterations_per_second: f64,
    pub trained_tokens: u64,
    /// Bytes.
    pub peak_memory: u64,
    /// Seconds left at the current pace.
    pub eta_seconds: f64,
    /// In a group, each rank's own figures since the last report, by rank (gathered to
    /// every rank); empty for a process training alone.
    pub ranks: Vec<RankThroughput>,
}

/// One rank's own work since the last report: the tokens of its rows of the batches and the
/// time it spent computing their gradients and exchanging them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RankThroughput {
    pub rank: usize,
    /// Trained (loss-bearing) tokens of this rank's rows.
    pub trained_tokens: u64,
    /// Seconds spent computing gradients (forward and backward passes, evaluated).
    pub compute_seconds: f64,
    /// Seconds spent in the gradient exchange, including waiting for slower ranks.
    pub exchange_seconds: f64,
    /// `trained_tokens / compute_seconds`: the rank's own speed.
    pub tokens_per_second: f64,
}

/// A probe prompt's answer at an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ProbeAnswer {
    pub prompt: String,
    pub answer: String,
}

/// What a run streams.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum TrainEvent {
    Started {
        total_steps: u64,
        resumed_from: Option<u64>,
        trainable_parameters: usize,
        batches_per_epoch: usize,
        memory: MemoryEstimate,
        /// Set when the batch size was lowered to fit in memory.
        batch_size_note: Option<String>,
    },
    /// Measured peak after the first steps, next to the estimate.
    Calibrated {
        estimated: u64,
        measured: u64,
    },
    Report(TrainReport),
    Evaluated {
        step: u64,
        val_loss: f64,
        improved: bool,
        probes: Vec<ProbeAnswer>,
    },
    Checkpoint {
        step: u64,
        path: PathBuf,
    },
    /// The micro-batch changed to follow memory (the batch, and so the training, did not).
    BatchResized(BatchResize),
    /// Memory after a step (and the evaluation after it, once it ran).
    Memory(MemorySample),
    /// The run's memory profile, last before it ends.
    MemoryProfile(MemoryProfile),
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum TrainStop {
    Finished,
    EarlyStopped,
    Cancelled,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainOutcome {
    pub stop: TrainStop,
    pub steps: u64,
    pub total_steps: u64,
    pub final_train_loss: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub best_step: Option<u64>,
    /// The adapter folder (`adapters.safetensors` is the best or the last adapter).
    pub adapter_dir: PathBuf,
    pub trained_tokens: u64,
    pub seconds: f64,
    pub peak_memory: u64,
    /// Losses of every step, for tests and plots.
    pub losses: Vec<f64>,
}
