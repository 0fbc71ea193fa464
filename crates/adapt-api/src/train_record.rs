//! A training run's events recorded as they come: each report and evaluation a row of the
//! run's metrics (an evaluation completes the row its step's report started), each checkpoint
//! a row of its checkpoints, and the job's progress.

use std::collections::BTreeMap;

use adapt_engine::train::TrainEvent;
use adapt_store::Metric;

use crate::error::ApiError;
use crate::jobs::JobContext;

/// Turns engine events into stored metrics, checkpoints and job progress.
#[derive(Default)]
pub(crate) struct Recorder {
    /// The metrics row of each step written so far this session (an evaluation completes
    /// the row its step's report started).
    rows: BTreeMap<u64, Metric>,
    total: u64,
}

impl Recorder {
    pub(crate) fn record(
        &mut self,
        ctx: &JobContext,
        run: i64,
        event: &TrainEvent,
    ) -> Result<(), ApiError> {
        match event {
            TrainEvent::Started { total_steps, .. } => {
                self.total = *total_steps;
            }
            TrainEvent::Report(r) => {
                let row = Metric {
                    step: r.step,
                    epoch: r.epoch,
                    train_loss: Some(r.train_loss),
                    val_loss: None,
                    learning_rate: r.learning_rate,
                    tokens_per_second: r.tokens_per_second,
                    peak_memory: r.peak_memory,
                    iterations_per_second: Some(r.iterations_per_second),
                    trained_tokens: Some(r.trained_tokens),
                    probes: None,
                    ranks: (!r.ranks.is_empty())
                        .then(|| serde_json::to_string(&r.ranks).ok())
                        .flatten(),
                };
                ctx.store().add_metrics(run, std::slice::from_ref(&row))?;
                self.rows.insert(r.step, row);
                ctx.progress(
                    r.step,
                    Some(self.total),
                    &format!(
                        "step {} of {}, loss {:.3}",
                        r.step, self.total, r.train_loss
                    ),
                )?;
            }
            TrainEvent::Evaluated {
                step,
                val_loss,
                probes,
                ..
            } => {
                let mut row = self.rows.get(step).cloned().unwrap_or(Metric {
                    step: *step,
                    ..Metric::default()
                });
                row.val_loss = Some(*val_loss);
                if !probes.is_empty() {
                    row.probes = serde_json::to_string(probes).ok();
                }
                ctx.store().add_metrics(run, std::slice::from_ref(&row))?;
                self.rows.insert(*step, row);
            }
            TrainEvent::Checkpoint { step, path } => {
                ctx.store().add_checkpoint(run, *step, path)?;
            }
            // Streamed to the shells; resizes are also kept in the run's checkpoints.
            TrainEvent::Calibrated { .. }
            | TrainEvent::BatchResized(_)
            | TrainEvent::Memory(_)
            | TrainEvent::MemoryProfile(_) => {}
        }
        Ok(())
    }
}
