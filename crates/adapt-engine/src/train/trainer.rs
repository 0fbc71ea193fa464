//! The training loop: a [`Session`] stepped to the end, with its events told to the caller —
//! started, the measured peak after the first steps, reports, evaluations with probe answers,
//! checkpoints, memory after each step and the run's memory profile — early stopping, and a
//! stop between steps that keeps a checkpoint.

use super::config::TrainConfig;
use super::events::{TrainEvent, TrainOutcome, TrainStop};
use super::files::RunFiles;
use super::probe::{probe, Prober};
use super::profile::Profiler;
use super::session::{Session, TrainData};
use crate::error::Result;
use crate::models::Model;

/// How a run talks to its caller.
pub struct Hooks<'a> {
    /// Answers probe prompts (none: probes are skipped).
    pub prober: Option<&'a Prober<'a>>,
    /// Hears every event.
    pub on_event: &'a mut dyn FnMut(&TrainEvent),
    /// Polled before every step; `true` stops the run after a checkpoint.
    pub cancel: &'a dyn Fn() -> bool,
}

/// The step after which the measured peak is reported beside the estimate.
const CALIBRATION_STEP: u64 = 3;

/// Trains adapters on `lm` with `data`, writing into `files.dir`. With `resume`, goes on from
/// the newest checkpoint there (the configuration must be the one the run started with).
/// `cancel` is polled before every step; on cancel a checkpoint is written first.
pub fn train<'a>(
    lm: &'a mut Model,
    data: &TrainData<'a>,
    config: &TrainConfig,
    files: &RunFiles,
    resume: bool,
    hooks: Hooks<'_>,
) -> Result<TrainOutcome> {
    let Hooks {
        prober,
        on_event,
        cancel,
    } = hooks;
    let mut session = Session::start(lm, data, config, files.clone(), resume)?;
    on_event(&TrainEvent::Started {
        total_steps: session.total_steps(),
        resumed_from: session.resumed_from(),
        trainable_parameters: session.trainable_parameters(),
        batches_per_epoch: session.batches_per_epoch() as usize,
        memory: session.memory().clone(),
        batch_size_note: session.batch_size_note().map(str::to_string),
    });
    let mut profiler = Profiler::new(session.model(), session.memory());
    let mut stop = TrainStop::Finished;
    while !session.done() {
        if cancel() {
            stop = TrainStop::Cancelled;
            break;
        }
        let step = session.step()?;
        profiler.step(
            step.step,
            step.micro_batch_size,
            step.width,
            step.step_peak,
            step.step_base,
        )?;
        if step.step == CALIBRATION_STEP.min(session.total_steps()) {
            on_event(&TrainEvent::Calibrated {
                estimated: session.memory().total,
                measured: step.peak_memory,
            });
        }
        if session.report_due() {
            let report = session.report(step.learning_rate, step.peak_memory)?;
            on_event(&TrainEvent::Report(report));
        }
        // After the step's report: a change made at this step applies from the next one (or
        // says this step was taken again, smaller).
        for resize in session.take_resizes() {
            on_event(&TrainEvent::BatchResized(resize));
        }
        if session.evaluation_due() {
            let held = mlx_rs::memory::active_memory()? as u64;
            mlx_rs::memory::reset_peak_memory()?;
            let (evaluation, probes) = session.evaluate(|m| probe(m, prober, config))?;
            profiler.evaluation((mlx_rs::memory::peak_memory()? as u64).saturating_sub(held));
            on_event(&TrainEvent::Evaluated {
                step: evaluation.step,
                val_loss: evaluation.val_loss,
                improved: evaluation.improved,
                probes,
            });
            if evaluation.patience_spent {
                stop = TrainStop::EarlyStopped;
            }
        }
        if let Some(sample) = profiler.last() {
            on_event(&TrainEvent::Memory(sample.clone()));
        }
        if session.checkpoint_due() || stop == TrainStop::EarlyStopped {
            let path = session.checkpoint()?;
            on_event(&TrainEvent::Checkpoint {
                step: step.step,
                path,
            });
        }
        if stop == TrainStop::EarlyStopped {
            break;
        }
    }
    let profile = profiler.summary(
        session.model(),
        config,
        session.trainable_parameters(),
        session.memory(),
    );
    on_event(&TrainEvent::MemoryProfile(profile));
    session.finish(stop, |step, path| {
        on_event(&TrainEvent::Checkpoint { step, path })
    })
}
