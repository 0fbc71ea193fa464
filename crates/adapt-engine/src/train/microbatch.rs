//! A batch size that follows memory during a run.
//!
//! The run's batch (the preflight's choice, which fixes which examples make up each step and so
//! the optimizer's view) never changes. What changes is how many rows go through the model at
//! once: each batch is cut into micro-batches whose gradients are added, weighted by their
//! trained tokens, into exactly the gradient of the whole batch. When a micro-batch's measured
//! peak goes over the budget (or MLX cannot allocate), the step is taken again from its start
//! with half the rows; when a step's peak nears the budget the next steps use half; after
//! several steps with room for twice the rows, the micro-batch grows back. Every change is a
//! [`BatchResize`], told as an event and kept in the run's state so a resume starts where the
//! run was.

use std::time::Instant;

use adapt_data::Batch;
use mlx_rs::error::Exception;
use mlx_rs::module::FlattenedModuleParam;
use mlx_rs::Array;

use super::loss::{batch_arrays, eval_in_backward_order, masked_loss, CompiledPass, GradEval};
use super::resize::{BatchResize, ResizeReason};
use crate::error::{EngineError, Result};
use crate::models::decoder::Decoder;

/// A step whose peak passes this share of the budget makes the next steps use half the rows.
const NEAR_BUDGET: f64 = 0.9;
/// The micro-batch doubles when twice its rows would stay under this share of the budget …
const ROOM: f64 = 0.7;
/// … for this many steps running.
const ROOMY_STEPS: u32 = 4;

/// The micro-batch of a run: rows per pass through the model, out of the batch's rows.
#[derive(Debug, Clone)]
pub struct MicroBatch {
    batch: usize,
    rows: usize,
    roomy: u32,
}

/// A step's gradients, added over its batches.
pub(crate) struct Accumulated {
    pub grads: FlattenedModuleParam,
    /// Mean loss over the trained tokens, and their count.
    pub loss: f64,
    pub tokens: u64,
    /// The highest peak any micro-batch measured, and the memory held before the step.
    pub peak: u64,
    pub base: u64,
    /// Seconds spent building the passes' graphs (forward and backward) on the host, and
    /// running them.
    pub build_seconds: f64,
    pub run_seconds: f64,
}

/// How an attempt at a step's gradients ended.
enum Attempt {
    Done(Accumulated),
    /// Too big: take the step again at the new size.
    Retry(BatchResize),
}

impl MicroBatch {
    /// A run of `batch` rows per batch, passing `rows` at a time.
    pub fn new(batch: usize, rows: usize) -> MicroBatch {
        MicroBatch {
            batch: batch.max(1),
            rows: rows.clamp(1, batch.max(1)),
            roomy: 0,
        }
    }

    /// Rows per micro-batch now.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Micro-batches per batch now.
    pub fn parts(&self) -> usize {
        self.batch.div_ceil(self.rows)
    }

    fn resize(
        &mut self,
        to: usize,
        step: u64,
        reason: ResizeReason,
        peak: u64,
        budget: u64,
    ) -> BatchResize {
        let from = self.rows;
        self.rows = to;
        self.roomy = 0;
        BatchResize {
            step,
            from,
            to,
            reason,
            peak_memory: peak,
            budget,
        }
    }

    /// Half the rows for step `step`, or `None` at one row.
    pub fn shrink(
        &mut self,
        step: u64,
        reason: ResizeReason,
        peak: u64,
        budget: u64,
    ) -> Option<BatchResize> {
        (self.rows > 1).then(|| self.resize(self.rows.div_ceil(2), step, reason, peak, budget))
    }

    /// After a step that peaked at `peak` holding `base` before it: half the rows when the peak
    /// neared `budget`, twice the rows after enough steps with room for them; `step` is the
    /// step the change applies to.
    pub fn after_step(
        &mut self,
        step: u64,
        peak: u64,
        base: u64,
        budget: u64,
    ) -> Option<BatchResize> {
        if peak as f64 > NEAR_BUDGET * budget as f64 {
            return self.shrink(step, ResizeReason::NearBudget, peak, budget);
        }
        if self.rows >= self.batch {
            return None;
        }
        let to = (self.rows * 2).min(self.batch);
        // What passes through the model grows with the rows; what was held before does not.
        let grown = base as f64 + peak.saturating_sub(base) as f64 * to as f64 / self.rows as f64;
        if grown < ROOM * budget as f64 {
            self.roomy += 1;
        } else {
            self.roomy = 0;
        }
        (self.roomy >= ROOMY_STEPS).then(|| self.resize(to, step, ResizeReason::Room, peak, budget))
    }
}

/// Step `step`'s gradients over `batches` (each batch's scaled by its entry of `weights` where
/// there is one: a group's share of the batch), taken again at half the micro-batch while memory
/// says it is too big; `seed` reseeds MLX's random state (dropout) before each attempt. Returns
/// them with the changes of the micro-batch on the way. With `compiled`, each pass runs
/// through it instead of a graph built anew.
pub(crate) fn step_gradients(
    net: &mut Decoder,
    mut compiled: Option<&mut CompiledPass>,
    (batches, weights): (&[Batch], &[f32]),
    micro: &mut MicroBatch,
    step: u64,
    seed: u64,
    budget: impl Fn() -> u64,
) -> Result<(Accumulated, Vec<BatchResize>)> {
    let mut resized = Vec::new();
    loop {
        mlx_rs::random::seed(seed)?;
        match gradients(
            net,
            compiled.as_deref_mut(),
            (batches, weights),
            micro,
            step,
            budget(),
        )? {
            Attempt::Done(acc) => return Ok((acc, resized)),
            Attempt::Retry(r) => resized.push(r),
        }
    }
}

/// Whether MLX failed for want of memory.
fn allocation_failed(e: &EngineError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("unable to allocate") || text.contains("out of memory")
}

/// One attempt at step `step`'s gradients over `batches` (its accumulated batches) at the
/// micro-batch `micro`: each batch's gradient is the token-weighted sum of its micro-batches',
/// the batches' gradients are averaged. A micro-batch over `budget` (or an allocation failure)
/// halves `micro` and asks for the step again; at one row it is an error saying what to change.
fn gradients(
    net: &mut Decoder,
    mut compiled: Option<&mut CompiledPass>,
    (batches, weights): (&[Batch], &[f32]),
    micro: &mut MicroBatch,
    step: u64,
    budget: u64,
) -> Result<Attempt> {
    let base = mlx_rs::memory::active_memory()? as u64;
    mlx_rs::memory::reset_peak_memory()?;
    let mut value_and_grad =
        mlx_rs::nn::value_and_grad(|net: &mut Decoder, (x, y, m): (&Array, &Array, &Array)| {
            masked_loss(net, x, y, m)
        });
    let mut grads: Option<FlattenedModuleParam> = None;
    let (mut loss_sum, mut tokens, mut peak) = (0.0f64, 0u64, 0u64);
    let (mut build_seconds, mut run_seconds) = (0.0, 0.0);
    let parts = micro.parts();
    let how = GradEval::from_env();
    // `ADAPT_TRACE=1`: the second step's graph by kind (the first also makes the fresh
    // adapters and traces what is compiled).
    let census = step == 2 && parts == 1 && crate::device::trace_requested();
    for (b, batch) in batches.iter().enumerate() {
        let total = batch.trained_tokens();
        let weight = weights.get(b).copied().unwrap_or(1.0);
        for part in batch.split_rows(parts) {
            let (x, y, m) = batch_arrays(&part)?;
            let building = Instant::now();
            let pass = match compiled.as_deref_mut() {
                Some(c) => c.pass(net, (&x, &y, &m)),
                None => value_and_grad(net, (&x, &y, &m)),
            }
            .map_err(EngineError::from);
            build_seconds += building.elapsed().as_secs_f64();
            let pass = pass.and_then(|(values, g)| {
                if census && b == 0 {
                    let counted = crate::graph::census(values.iter().chain(g.values()))?;
                    eprintln!(
                        "trace: step {step} gradients graph: {}",
                        counted.summary(12)
                    );
                }
                let running = Instant::now();
                eval_in_backward_order(&values, &g, how)?;
                run_seconds += running.elapsed().as_secs_f64();
                Ok((values, g))
            });
            let (values, g) = match pass {
                Ok(v) => v,
                Err(e) if allocation_failed(&e) => {
                    let peak = mlx_rs::memory::peak_memory()? as u64;
                    return retry(micro, step, ResizeReason::AllocationFailed, peak, budget);
                }
                Err(e) => return Err(e),
            };
            peak = peak.max(mlx_rs::memory::peak_memory()? as u64);
            if peak > budget {
                return retry(micro, step, ResizeReason::OverBudget, peak, budget);
            }
            let n = values[1].item_cast::<f32>() as u64;
            loss_sum += values[0].item_cast::<f32>() as f64 * n as f64;
            tokens += n;
            // A batch in parts: each part's mean-loss gradient weighted by its share of the
            // batch's trained tokens adds up to the whole batch's.
            let share = match (parts, total) {
                (1, _) => 1.0,
                (_, 0) => 1.0 / parts as f32,
                (_, t) => n as f32 / t as f32,
            };
            let g = match share * weight {
                1.0 => g,
                by => scaled(g, by)?,
            };
            grads = Some(match grads {
                None => g,
                Some(acc) => acc
                    .into_iter()
                    .map(|(k, a)| Ok((k.clone(), a.add(&g[&k])?)))
                    .collect::<std::result::Result<_, Exception>>()?,
            });
        }
    }
    let mut grads = grads.unwrap_or_default();
    if batches.len() > 1 {
        let n = Array::from_f32(batches.len() as f32);
        for g in grads.values_mut() {
            *g = g.divide(&n)?;
        }
    }
    Ok(Attempt::Done(Accumulated {
        grads,
        loss: loss_sum / tokens.max(1) as f64,
        tokens,
        peak,
        base,
        build_seconds,
        run_seconds,
    }))
}

fn scaled(grads: FlattenedModuleParam, by: f32) -> Result<FlattenedModuleParam> {
    let by = Array::from_f32(by);
    Ok(grads
        .into_iter()
        .map(|(k, g)| Ok((k, g.multiply(&by)?)))
        .collect::<std::result::Result<_, Exception>>()?)
}

fn retry(
    micro: &mut MicroBatch,
    step: u64,
    reason: ResizeReason,
    peak: u64,
    budget: u64,
) -> Result<Attempt> {
    match micro.shrink(step, reason, peak, budget) {
        Some(resize) => Ok(Attempt::Retry(resize)),
        None => Err(EngineError::InvalidRequest(format!(
            "step {step} needs about {} MiB even one row at a time, more than the memory budget \
             of {} MiB; lower max_seq_length, turn on grad_checkpoint, adapt fewer layers \
             (num_layers), use a 4-bit base model, or raise memory_budget",
            peak >> 20,
            budget >> 20
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_near_the_budget_and_grows_back_after_room() {
        let mut m = MicroBatch::new(8, 8);
        assert_eq!(m.parts(), 1);
        // Near the budget: 8 → 4 for the next step.
        let r = m.after_step(3, 95, 10, 100).unwrap();
        assert_eq!(
            (r.step, r.from, r.to, r.reason),
            (3, 8, 4, ResizeReason::NearBudget)
        );
        assert_eq!(m.parts(), 2);
        // Twice the rows would need 10 + 2·(60 − 10) = 110: no room, the count starts over.
        assert!(m.after_step(4, 60, 10, 100).is_none());
        // 10 + 2·(30 − 10) = 50 < 70: room, four steps running.
        for step in 5..8 {
            assert!(m.after_step(step, 30, 10, 100).is_none());
        }
        let r = m.after_step(8, 30, 10, 100).unwrap();
        assert_eq!((r.from, r.to, r.reason), (4, 8, ResizeReason::Room));
        // At the full batch there is nothing to grow into.
        for step in 9..20 {
            assert!(m.after_step(step, 11, 10, 100).is_none());
        }
        // Down to one row, then no further.
        let mut m = MicroBatch::new(3, 3);
        assert_eq!(m.shrink(1, ResizeReason::OverBudget, 1, 1).unwrap().to, 2);
        assert_eq!(m.shrink(1, ResizeReason::OverBudget, 1, 1).unwrap().to, 1);
        assert_eq!(m.parts(), 3);
        assert!(m.shrink(1, ResizeReason::OverBudget, 1, 1).is_none());
    }
}
