//! The memory profiler of a run: after each step, MLX's active, peak and cache memory with a
//! breakdown (weights, adapters with their optimizer state, activations, logits) and, at
//! evaluations, what validation took beyond training; growth of the memory held across steps
//! of the same batch shape flagged as a leak; and a summary whose suggestions (gradient
//! checkpointing, a shorter max length, a 4-bit base, accumulation) are ranked by the memory
//! the estimate says each would save.

use serde::Serialize;

use super::config::TrainConfig;
use super::memory::{estimate, MemoryEstimate};
use crate::error::Result;
use crate::models::Model;

/// Growth of the memory held after same-shape steps above this many bytes is a leak.
const LEAK_BYTES: u64 = 1 << 20;
/// … seen over at least this many such steps.
const LEAK_STEPS: usize = 3;

/// Memory of one step, in bytes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MemorySample {
    pub step: u64,
    /// Rows per pass through the model, and the widest batch's tokens per row.
    pub micro_batch_size: usize,
    pub width: usize,
    /// Held by arrays after the step, the step's peak, and MLX's buffer cache after it.
    pub active: u64,
    pub peak: u64,
    pub cache: u64,
    /// The breakdown of the peak: model weights (with the dequantized copies a quantized
    /// model's layers make during a step where the backend multiplies that way), adapter
    /// weights with their gradients and optimizer state, logits with their gradient (from the
    /// shape), and the rest of what the step added (activations kept for the backward pass).
    pub weights: u64,
    pub adapters: u64,
    pub logits: u64,
    pub activations: u64,
    /// What an evaluation after this step (validation batches, probe answers with their KV
    /// caches) took above the memory held before it.
    pub evaluation: Option<u64>,
}

/// Memory held after same-shape steps that kept growing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MemoryLeak {
    pub micro_batch_size: usize,
    pub width: usize,
    pub first_step: u64,
    pub last_step: u64,
    /// Growth from the first to the last of those steps, bytes.
    pub growth: u64,
}

/// A change that would lower the run's peak, with what the estimate says it saves.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MemorySuggestion {
    /// The setting, as a configuration spells it.
    pub setting: String,
    pub advice: String,
    /// Bytes saved per step, by the estimate.
    pub saves: u64,
}

/// A run's memory profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MemoryProfile {
    pub samples: Vec<MemorySample>,
    /// The highest peak of any step, and the preflight estimate beside it.
    pub peak: u64,
    pub estimate: MemoryEstimate,
    pub leaks: Vec<MemoryLeak>,
    /// Largest saving first.
    pub suggestions: Vec<MemorySuggestion>,
}

/// Collects a run's samples.
pub struct Profiler {
    weights: u64,
    /// Dequantized copies made during a step (part of `weights`, not held between steps).
    copies: u64,
    adapters: u64,
    vocab: u64,
    samples: Vec<MemorySample>,
}

impl Profiler {
    /// A profiler for a run on `lm` whose preflight estimate is `estimate`.
    pub fn new(lm: &Model, estimate: &MemoryEstimate) -> Profiler {
        Profiler {
            weights: estimate.weights,
            copies: estimate.weights.saturating_sub(lm.nbytes() as u64),
            adapters: estimate.adapters,
            vocab: lm.args.vocab_size as u64,
            samples: Vec::new(),
        }
    }

    /// Records step `step`, just taken at `micro` rows per pass over batches `width` tokens
    /// wide, which peaked at `peak` holding `base` when it began.
    pub fn step(
        &mut self,
        step: u64,
        micro: usize,
        width: usize,
        peak: u64,
        base: u64,
    ) -> Result<()> {
        let active = mlx_rs::memory::active_memory()? as u64;
        let cache = mlx_rs::memory::cache_memory()? as u64;
        let logits = (micro * width) as u64 * self.vocab * 4 * 2;
        let added = peak.saturating_sub(base).saturating_sub(self.copies);
        self.samples.push(MemorySample {
            step,
            micro_batch_size: micro,
            width,
            active,
            peak,
            cache,
            weights: self.weights,
            adapters: self.adapters,
            logits: logits.min(added),
            activations: added.saturating_sub(logits),
            evaluation: None,
        });
        Ok(())
    }

    /// The last step's sample.
    pub fn last(&self) -> Option<&MemorySample> {
        self.samples.last()
    }

    /// Records that the evaluation after the last step took `bytes` above what was held.
    pub fn evaluation(&mut self, bytes: u64) {
        if let Some(s) = self.samples.last_mut() {
            s.evaluation = Some(bytes);
        }
    }

    /// The profile: samples, leaks and suggestions for a run of `config` on `lm`.
    pub fn summary(
        &self,
        lm: &Model,
        config: &TrainConfig,
        trainable: usize,
        planned: &MemoryEstimate,
    ) -> MemoryProfile {
        MemoryProfile {
            samples: self.samples.clone(),
            peak: self.samples.iter().map(|s| s.peak).max().unwrap_or(0),
            estimate: planned.clone(),
            leaks: leaks(&self.samples),
            suggestions: suggestions(lm, config, trainable, planned),
        }
    }
}

/// Same-shape steps whose held memory only grew, by more than [`LEAK_BYTES`].
fn leaks(samples: &[MemorySample]) -> Vec<MemoryLeak> {
    let mut shapes: Vec<(usize, usize)> = samples
        .iter()
        .map(|s| (s.micro_batch_size, s.width))
        .collect();
    shapes.sort_unstable();
    shapes.dedup();
    shapes
        .into_iter()
        .filter_map(|(micro, width)| {
            let same: Vec<&MemorySample> = samples
                .iter()
                .filter(|s| (s.micro_batch_size, s.width) == (micro, width))
                .collect();
            let growing = same.windows(2).all(|w| w[1].active >= w[0].active);
            let (first, last) = (same.first()?, same.last()?);
            let growth = last.active.saturating_sub(first.active);
            (same.len() >= LEAK_STEPS && growing && growth > LEAK_BYTES).then_some(MemoryLeak {
                micro_batch_size: micro,
                width,
                first_step: first.step,
                last_step: last.step,
                growth,
            })
        })
        .collect()
}

/// Changes that would lower the estimate of a step like the run's, largest saving first.
fn suggestions(
    lm: &Model,
    config: &TrainConfig,
    trainable: usize,
    planned: &MemoryEstimate,
) -> Vec<MemorySuggestion> {
    let (rows, len, budget) = (planned.batch_size, planned.seq_len, planned.budget);
    let at = |c: &TrainConfig, rows: usize, len: usize| {
        estimate(lm, c, trainable, rows, len, budget).total
    };
    let now = at(config, rows, len);
    let mut out = Vec::new();
    let mut say = |setting: &str, advice: String, total: u64| {
        if total < now {
            out.push(MemorySuggestion {
                setting: setting.into(),
                advice,
                saves: now - total,
            });
        }
    };
    if !config.grad_checkpoint {
        let c = TrainConfig {
            grad_checkpoint: true,
            ..config.clone()
        };
        say(
            "grad_checkpoint",
            "Turn on gradient checkpointing: activations are recomputed in the backward pass \
             (about a third more time)."
                .into(),
            at(&c, rows, len),
        );
    }
    if len > 2 * super::config::MIN_SEQ_LENGTH {
        say(
            "max_seq_length",
            format!(
                "Lower max_seq_length to {} (longer examples are cut).",
                len / 2
            ),
            at(config, rows, len / 2),
        );
    }
    if !lm.is_quantized() {
        // A 4-bit base holds about 4.5 bits per weight (scales and biases per group of 64).
        let dense = lm.nbytes() as u64;
        let bits = lm.net().model.norm.weight.item_size() as u64 * 8;
        say(
            "quantize",
            "Train on a 4-bit base (QLoRA): `adapt quantize --bits 4`, then train on it.".into(),
            now - dense + dense * 9 / (2 * bits),
        );
    }
    if rows > 1 {
        say(
            "grad_accumulation_steps",
            format!(
                "Halve batch_size to {} and double grad_accumulation_steps: the same batch, in \
                 two passes.",
                rows.div_ceil(2)
            ),
            at(config, rows.div_ceil(2), len),
        );
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.saves));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(step: u64, width: usize, active: u64) -> MemorySample {
        MemorySample {
            step,
            micro_batch_size: 4,
            width,
            active,
            peak: active * 2,
            cache: 0,
            weights: 0,
            adapters: 0,
            logits: 0,
            activations: 0,
            evaluation: None,
        }
    }

    #[test]
    fn growth_at_one_shape_is_a_leak_and_steady_memory_is_not() {
        let mb = 1 << 20;
        // Width 64 grows by 2 MiB a step; width 128 holds steady; width 32 grows only twice.
        let samples = vec![
            sample(1, 64, 100 * mb),
            sample(2, 128, 150 * mb),
            sample(3, 64, 102 * mb),
            sample(4, 128, 150 * mb),
            sample(5, 64, 104 * mb),
            sample(6, 128, 150 * mb),
            sample(7, 32, 10 * mb),
            sample(8, 32, 90 * mb),
        ];
        let found = leaks(&samples);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (
                found[0].width,
                found[0].first_step,
                found[0].last_step,
                found[0].growth
            ),
            (64, 1, 5, 4 * mb)
        );
        // One step back down is not a leak.
        let mut samples = samples;
        samples.push(sample(9, 64, 101 * mb));
        assert!(leaks(&samples).is_empty());
    }
}
