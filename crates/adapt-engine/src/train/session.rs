//! A training session: one run's adapters on a model, its batches, optimizer, schedule and
//! state, advanced one optimizer step at a time.
//!
//! [`Session::start`] attaches the adapters (fresh, or a checkpoint's when resuming), fits the
//! micro-batch to memory ([`super::microbatch`]) and sizes the schedule; then [`Session::step`] trains one optimizer
//! step (accumulated micro-batches, clipping, the update), [`Session::evaluate`] measures the
//! validation loss (keeping the best adapter), [`Session::checkpoint`] writes everything a
//! resume needs, and [`Session::finish`] writes the run's adapter and says how it ended. A
//! caller that stops between steps and starts again with `resume` takes exactly the steps an
//! uninterrupted run would have.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use adapt_data::{BatchConfig, Batcher, TokenCache};
use mlx_rs::module::ModuleParameters;
use mlx_rs::{Array, Dtype};

use super::checkpoint::{self, replace_file, TrainState, OPTIMIZER_FILE};
use super::config::{Precision, TrainConfig};
use super::data_parallel::{self as dp, RunStart};
use super::events::{TrainOutcome, TrainReport, TrainStop};
use super::files::RunFiles;
use super::loss::{evaluate, CompiledPass};
use super::memory::{self, fit_memory, longest, MemoryEstimate};
use super::microbatch::{self, MicroBatch};
use super::optimizer::{clipped, Opt};
use super::prefetch::Prefetch;
use super::resize::BatchResize;
use super::schedule::Schedule;
use crate::adapters::{self, ADAPTERS_FILE};
use crate::distributed::Group;
use crate::error::{EngineError, Result};
use crate::models::Model;

/// The split caches a run trains and validates on.
pub struct TrainData<'a> {
    pub train: &'a TokenCache,
    pub valid: Option<&'a TokenCache>,
    /// Token id written into padding (never trained on).
    pub pad_id: u32,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepResult {
    /// The step's number (1 for the first).
    pub step: u64,
    /// Mean loss over the step's trained tokens.
    pub loss: f64,
    /// Trained (loss-bearing) tokens in the step.
    pub tokens: u64,
    pub learning_rate: f64,
    /// MLX's peak memory over the run so far, in bytes.
    pub peak_memory: u64,
    /// MLX's peak memory during this step alone, and what was held when it began.
    pub step_peak: u64,
    pub step_base: u64,
    /// Seconds the step waited for its batches to be built (none when they were built ahead).
    pub batch_seconds: f64,
    /// Rows per pass through the model in this step, and its widest batch's tokens per row.
    pub micro_batch_size: usize,
    pub width: usize,
}

/// What an evaluation found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub step: u64,
    pub val_loss: f64,
    /// Better than every earlier evaluation (its adapter is now the best one).
    pub improved: bool,
    /// Evaluations since the last improvement reached the early-stopping patience.
    pub patience_spent: bool,
}

/// A run in progress on one model.
pub struct Session<'a> {
    lm: &'a mut Model,
    config: TrainConfig,
    files: RunFiles,
    train: Batcher<'a>,
    valid: Option<Batcher<'a>>,
    opt: Opt,
    schedule: Schedule,
    state: TrainState,
    total_steps: u64,
    batches_per_epoch: u64,
    trainable: usize,
    estimate: MemoryEstimate,
    batch_size_note: Option<String>,
    resumed_from: Option<u64>,
    started: Instant,
    seconds_before: f64,
    losses: Vec<f64>,
    last_loss: Option<f64>,
    /// MLX's peak counter is reset by generation (probes), so the session keeps its own.
    peak: u64,
    /// Reports: loss sum, steps, tokens since the last one, and when it was.
    window: (f64, u64, u64, Instant),
    /// The group training data-parallel with this process (rank 0 alone writes files).
    group: Option<&'static Group>,
    /// In a group, this rank's own work since the last report.
    rank_window: dp::RankWindow,
    /// Rows per pass through the model, and its changes not yet told.
    micro: MicroBatch,
    resized: Vec<BatchResize>,
    prefetch: Prefetch,
    /// `ADAPT_TRACE=1`: each step's time on the host (building graphs) and running them, to
    /// standard error (a diagnostic for the GPU work).
    trace: bool,
    /// The forward and backward pass compiled (without dropout or gradient checkpointing;
    /// `ADAPT_COMPILE_STEP=0` builds it anew each step instead, a diagnostic).
    compiled: Option<CompiledPass>,
}

impl<'a> Session<'a> {
    /// Attaches adapters to `lm` and prepares a run of `config` on `data` in `files.dir`; with
    /// `resume`, from the newest checkpoint there (the configuration must be the one the run
    /// started with).
    pub fn start(
        lm: &'a mut Model,
        data: &TrainData<'a>,
        config: &TrainConfig,
        files: RunFiles,
        resume: bool,
    ) -> Result<Session<'a>> {
        config.validate("training configuration")?;
        std::fs::create_dir_all(files.checkpoints()).map_err(|e| EngineError::Write {
            path: files.checkpoints(),
            message: e.to_string(),
        })?;
        let group = dp::training_group()?;
        let leader = group.is_none_or(|g| g.is_leader());
        let trainable = attach_fresh(lm, config)?;
        let resumed = match (resume && leader, leader) {
            (true, _) => Some(resume_point(lm, &files)?),
            (false, true) => {
                write_adapter_config(config, lm, &files)?;
                None
            }
            (false, false) => None,
        };
        // Memory: the batch stays as configured; the rows passed through the model at once
        // start at the most whose estimate fits (or the run is refused), then follow the
        // measured peaks. A resumed run keeps its batch and its micro-batch.
        let seq_len = longest(data.train, config);
        let (batch, estimate, batch_size_note) = match &resumed {
            Some((_, state)) => {
                let batch = state.batch_size.unwrap_or(config.batch_size);
                let rows = state.micro_batch_size.unwrap_or(batch);
                let budget = memory::run_budget(config);
                let e = memory::estimate(lm, config, trainable, rows, seq_len, budget);
                (batch, e, None)
            }
            None => {
                let (e, note) = fit_memory(lm, config, trainable, seq_len)?;
                (config.batch_size, e, note)
            }
        };
        let (estimate, shared) = match group {
            Some(g) => {
                let shape = (trainable, seq_len);
                let (e, start) = dp_start(g, lm, data, config, shape, estimate, &resumed)?;
                (e, Some(start))
            }
            None => (estimate, None),
        };
        // A group trains the batch size every rank fits.
        let batch = match &shared {
            Some(start) => start.state.batch_size.unwrap_or(batch),
            None => batch,
        };
        let batch_config = BatchConfig {
            batch_size: batch,
            max_seq_length: config.max_seq_length,
            seed: config.seed,
            pad_id: data.pad_id,
        };
        let train = Batcher::new(data.train, batch_config)
            .map_err(|e| EngineError::InvalidRequest(format!("training split: {e}")))?;
        let valid = match data.valid {
            Some(v) if !v.is_empty() => Some(
                Batcher::new(v, batch_config)
                    .map_err(|e| EngineError::InvalidRequest(format!("validation split: {e}")))?,
            ),
            _ => None,
        };
        let batches_per_epoch = train.batches_per_epoch() as u64;
        let total_steps = total_steps(config, batches_per_epoch);
        let schedule = Schedule::for_run(
            config.learning_rate,
            config.lr_schedule.as_ref(),
            config.schedule.as_ref(),
            total_steps,
        )
        .map_err(EngineError::InvalidRequest)?;
        let mut opt = Opt::new(config);
        let fresh = TrainState {
            micro_batch_size: Some(estimate.batch_size),
            ..TrainState::fresh(config.seed, batch)
        };
        let (state, resumed_from) = starting_state(&mut opt, shared, &resumed, fresh)?;
        let micro = MicroBatch::new(batch, state.micro_batch_size.unwrap_or(batch));
        adapters::set_training(lm, true);
        lm.net_mut().grad_checkpoint = config.grad_checkpoint;
        let compiled = CompiledPass::for_run(lm.net(), config);
        mlx_rs::memory::reset_peak_memory()?;
        Ok(Session {
            lm,
            config: config.clone(),
            files,
            train,
            valid,
            opt,
            schedule,
            seconds_before: state.seconds,
            resumed_from,
            state,
            total_steps,
            batches_per_epoch,
            trainable,
            estimate,
            batch_size_note,
            started: Instant::now(),
            losses: Vec::new(),
            last_loss: None,
            peak: 0,
            window: (0.0, 0, 0, Instant::now()),
            rank_window: dp::RankWindow::default(),
            group,
            micro,
            resized: Vec::new(),
            prefetch: Prefetch::new(config.prefetch),
            trace: crate::device::trace_requested(),
            compiled,
        })
    }

    /// Optimizer steps the run takes in all.
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }

    /// Where the run stands (steps taken, data position, best validation loss, …).
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// Whether every step has been taken.
    pub fn done(&self) -> bool {
        self.state.step >= self.total_steps
    }

    /// The step a resumed session started from.
    pub fn resumed_from(&self) -> Option<u64> {
        self.resumed_from
    }

    pub fn trainable_parameters(&self) -> usize {
        self.trainable
    }

    pub fn batches_per_epoch(&self) -> u64 {
        self.batches_per_epoch
    }

    /// The memory estimate at the batch size the run uses.
    pub fn memory(&self) -> &MemoryEstimate {
        &self.estimate
    }

    /// Set when the micro-batch started below the batch to fit in memory.
    pub fn batch_size_note(&self) -> Option<&str> {
        self.batch_size_note.as_deref()
    }

    /// The model with its adapters as they are now (for probes).
    pub fn model(&self) -> &Model {
        self.lm
    }

    /// Trains one optimizer step: `grad_accumulation_steps` batches, each in as many
    /// micro-batches as memory asks for, their gradients averaged, clipped and applied.
    pub fn step(&mut self) -> Result<StepResult> {
        let lr = self.schedule.at(self.state.step);
        self.opt.set_lr(lr as f32);
        let (acc, batch_seconds, width) = self.gradients()?;
        let micro_batch_size = self.micro.rows();
        let (loss, tokens) = (acc.loss, acc.tokens);
        let grads = clipped(acc.grads, self.config.max_grad_norm)?;
        let updating = Instant::now();
        self.opt.update(self.lm.net_mut(), &grads)?;
        let update_build = updating.elapsed().as_secs_f64();
        let trainable: Vec<Array> = self
            .lm
            .net()
            .trainable_parameters()
            .flatten()
            .values()
            .map(|a| (*a).clone())
            .collect();
        let opt_state = self.opt.state()?;
        let updated: Vec<&Array> = trainable
            .iter()
            .chain(opt_state.iter().map(|(_, a)| a))
            .collect();
        if self.trace && self.state.step == 1 {
            let counted = crate::graph::census(updated.iter().copied())?;
            eprintln!("trace: step 2 update graph: {}", counted.summary(12));
        }
        let running = Instant::now();
        mlx_rs::transforms::eval(updated)?;
        if self.trace {
            eprintln!(
                "trace: step {}: gradients build {:.2} ms, run {:.2} ms; update build {:.2} ms, \
                 run {:.2} ms",
                self.state.step + 1,
                acc.build_seconds * 1e3,
                acc.run_seconds * 1e3,
                update_build * 1e3,
                running.elapsed().as_secs_f64() * 1e3
            );
        }
        if !loss.is_finite() {
            return Err(EngineError::InvalidRequest(format!(
                "the training loss became {loss} at step {}; lower learning_rate or set \
                 max_grad_norm",
                self.state.step + 1
            )));
        }
        self.state.step += 1;
        self.state.trained_tokens += tokens;
        self.state.seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
        self.losses.push(loss);
        self.last_loss = Some(loss);
        self.window.0 += loss;
        self.window.1 += 1;
        self.window.2 += tokens;
        let step_peak = (mlx_rs::memory::peak_memory()? as u64).max(acc.peak);
        self.peak = self.peak.max(step_peak);
        let budget = memory::run_budget(&self.config);
        let next = self.state.step + 1;
        if let Some(r) = self.micro.after_step(next, acc.peak, acc.base, budget) {
            self.resized(r);
        }
        Ok(StepResult {
            step: self.state.step,
            loss,
            tokens,
            learning_rate: lr,
            peak_memory: self.peak,
            step_peak,
            step_base: acc.base,
            batch_seconds,
            micro_batch_size,
            width,
        })
    }

    /// The accumulated gradients of one step: its batches (built ahead while the step before
    /// ran, when prefetching) passed through the model — again from the start, in smaller
    /// parts, while memory says it is too big — while the next step's batches are built. In a
    /// group, this rank's rows of each batch, weighted by their share of the batch's trained
    /// tokens, then summed across the group.
    fn gradients(&mut self) -> Result<(microbatch::Accumulated, f64, usize)> {
        let n = self.config.grad_accumulation_steps;
        let (current, waited) = self.prefetch.take(&self.train, self.state.position, n);
        self.state.position = current.next;
        let width = current.batches.iter().map(|b| b.width).max().unwrap_or(0);
        let step = self.state.step + 1;
        let seed = step_seed(self.config.seed, self.state.step);
        let parts: Option<Vec<dp::LocalPart>> = self.group.map(|g| {
            current
                .batches
                .iter()
                .map(|b| dp::local_part(b, g.rank(), g.size()))
                .collect()
        });
        let (batches, weights): (Vec<_>, Vec<f32>) = match &parts {
            Some(parts) => parts.iter().map(|p| (p.batch.clone(), p.weight)).unzip(),
            None => (current.batches.clone(), Vec::new()),
        };
        let (net, micro, config) = (self.lm.net_mut(), &mut self.micro, &self.config);
        let compiled = self.compiled.as_mut();
        let (computed, compute_seconds) = self.prefetch.ahead(&self.train, current.next, n, || {
            let budget = || memory::run_budget(config);
            let computing = Instant::now();
            let out = microbatch::step_gradients(
                net,
                compiled,
                (&batches, &weights),
                micro,
                step,
                seed,
                budget,
            );
            (out, computing.elapsed().as_secs_f64())
        });
        let (mut acc, resized) = computed?;
        for r in resized {
            self.resized(r);
        }
        if let (Some(group), Some(parts)) = (self.group, &parts) {
            let global: u64 = parts.iter().map(|p| p.global_tokens).sum();
            let exchanging = Instant::now();
            let (grads, loss_sum) = dp::reduce_step(
                group,
                std::mem::take(&mut acc.grads),
                acc.loss * acc.tokens as f64,
            )?;
            self.rank_window.add(
                acc.tokens,
                compute_seconds,
                exchanging.elapsed().as_secs_f64(),
            );
            acc.grads = grads;
            acc.tokens = global;
            acc.loss = loss_sum / global.max(1) as f64;
        }
        Ok((acc, waited, width))
    }

    fn resized(&mut self, r: BatchResize) {
        self.state.micro_batch_size = Some(r.to);
        self.state.resizes.push(r.clone());
        self.resized.push(r);
    }

    /// The micro-batch changes since the last call, oldest first.
    pub fn take_resizes(&mut self) -> Vec<BatchResize> {
        std::mem::take(&mut self.resized)
    }

    /// Rows per pass through the model now.
    pub fn micro_batch_size(&self) -> usize {
        self.micro.rows()
    }

    /// A report is due after this step (every `steps_per_report` steps, and the last).
    pub fn report_due(&self) -> bool {
        self.state.step.is_multiple_of(self.config.steps_per_report) || self.done()
    }

    /// The figures since the last report (which this one becomes). In a group, every rank's
    /// own figures are gathered too (every rank reports at the same steps).
    pub fn report(&mut self, learning_rate: f64, peak_memory: u64) -> Result<TrainReport> {
        let ranks = match self.group {
            Some(g) => dp::gather_throughput(g, std::mem::take(&mut self.rank_window))?,
            None => Vec::new(),
        };
        let secs = self.window.3.elapsed().as_secs_f64().max(1e-9);
        let elapsed = self.started.elapsed().as_secs_f64();
        let done_here = self.state.step - self.resumed_from.unwrap_or(0);
        let (loss, steps, tokens, _) = self.window;
        self.window = (0.0, 0, 0, Instant::now());
        Ok(TrainReport {
            step: self.state.step,
            total_steps: self.total_steps,
            epoch: self.state.position.epoch as f64
                + self.state.position.step as f64 / self.batches_per_epoch.max(1) as f64,
            train_loss: loss / steps.max(1) as f64,
            learning_rate,
            tokens_per_second: tokens as f64 / secs,
            iterations_per_second: steps as f64 / secs,
            trained_tokens: self.state.trained_tokens,
            peak_memory,
            eta_seconds: elapsed / done_here.max(1) as f64
                * (self.total_steps - self.state.step) as f64,
            ranks,
        })
    }

    /// An evaluation is due after this step (every `steps_per_eval` steps, and the last),
    /// when there is a validation split.
    pub fn evaluation_due(&self) -> bool {
        self.valid.is_some()
            && (self.state.step.is_multiple_of(self.config.steps_per_eval) || self.done())
    }

    /// The validation loss now; a better one than before makes this adapter the best.
    /// `probe` runs with dropout off, before training resumes.
    pub fn evaluate<T>(
        &mut self,
        probe: impl FnOnce(&Model) -> Result<T>,
    ) -> Result<(Evaluation, T)> {
        let Some(valid) = &self.valid else {
            return Err(EngineError::InvalidRequest(
                "no validation split to evaluate on".into(),
            ));
        };
        adapters::set_training(self.lm, false);
        let measured = evaluate(self.lm, valid, self.config.val_batches, self.group)
            .and_then(|loss| Ok((loss, probe(self.lm)?)));
        adapters::set_training(self.lm, true);
        let (val_loss, probed) = measured?;
        let leads = self.leads();
        let state = &mut self.state;
        let improved = state.best_val_loss.is_none_or(|b| val_loss < b);
        if improved {
            state.best_val_loss = Some(val_loss);
            state.best_step = Some(state.step);
            state.evals_since_best = 0;
            if leads {
                replace_file(&self.files.best(), |p| adapters::save_weights(self.lm, p))?;
            }
        } else {
            state.evals_since_best += 1;
        }
        // Evaluation time does not count against training speed.
        self.window.3 = Instant::now();
        let patience_spent = self
            .config
            .early_stopping_patience
            .is_some_and(|p| state.evals_since_best >= p);
        let evaluation = Evaluation {
            step: state.step,
            val_loss,
            improved,
            patience_spent,
        };
        Ok((evaluation, probed))
    }

    /// A checkpoint is due after this step (every `save_every` steps, and the last).
    pub fn checkpoint_due(&self) -> bool {
        self.state.step.is_multiple_of(self.config.save_every) || self.done()
    }

    /// Writes a checkpoint of this step (adapter, optimizer state, `state.json`); returns its
    /// folder.
    pub fn checkpoint(&mut self) -> Result<PathBuf> {
        self.state.seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
        if !self.leads() {
            // Rank 0 writes the group's checkpoint; this is where it goes.
            return Ok(checkpoint::step_dir(
                &self.files.checkpoints(),
                self.state.step,
            ));
        }
        let opt_state = self.opt.state()?;
        let lm = &*self.lm;
        checkpoint::write(&self.files.checkpoints(), &self.state, |dir| {
            adapters::save_weights(lm, &dir.join(ADAPTERS_FILE))?;
            let refs: Vec<(&str, &Array)> =
                opt_state.iter().map(|(k, v)| (k.as_ref(), v)).collect();
            Array::save_safetensors(refs, None, dir.join(OPTIMIZER_FILE)).map_err(|e| {
                EngineError::Write {
                    path: dir.join(OPTIMIZER_FILE),
                    message: e.to_string(),
                }
            })
        })
    }

    /// Ends the session: a stopped run keeps a checkpoint of its last step (`on_checkpoint`
    /// hears of it); any other writes the run's adapter — the best one when validation ran
    /// and `keep_best` is on, else the last.
    pub fn finish(
        mut self,
        stop: TrainStop,
        on_checkpoint: impl FnOnce(u64, PathBuf),
    ) -> Result<TrainOutcome> {
        adapters::set_training(self.lm, false);
        self.lm.net_mut().grad_checkpoint = false;
        self.state.seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
        if stop == TrainStop::Cancelled && self.state.step > self.resumed_from.unwrap_or(0) {
            let path = self.checkpoint()?;
            on_checkpoint(self.state.step, path);
        }
        if stop != TrainStop::Cancelled && self.leads() {
            self.write_adapter()?;
        }
        Ok(TrainOutcome {
            stop,
            steps: self.state.step,
            total_steps: self.total_steps,
            final_train_loss: self.last_loss,
            best_val_loss: self.state.best_val_loss,
            best_step: self.state.best_step,
            adapter_dir: self.files.dir.clone(),
            trained_tokens: self.state.trained_tokens,
            seconds: self.state.seconds,
            peak_memory: self.peak,
            losses: std::mem::take(&mut self.losses),
        })
    }

    /// Whether this process writes the run's files (alone, or rank 0 of its group).
    pub fn leads(&self) -> bool {
        self.group.is_none_or(|g| g.is_leader())
    }

    /// This process's rank and the group's size (`(0, 1)` alone).
    pub fn rank(&self) -> (usize, usize) {
        self.group.map_or((0, 1), |g| (g.rank(), g.size()))
    }

    fn write_adapter(&self) -> Result<()> {
        let best = self.files.best();
        if self.config.keep_best && best.exists() {
            replace_file(&self.files.adapters(), |p| {
                std::fs::copy(&best, p)
                    .map(|_| ())
                    .map_err(|e| EngineError::Write {
                        path: p.to_path_buf(),
                        message: e.to_string(),
                    })
            })
        } else {
            replace_file(&self.files.adapters(), |p| {
                adapters::save_weights(self.lm, p)
            })
        }
    }
}

/// The state a session starts from — the group's (rank 0's), a checkpoint's, or `fresh` — with
/// the step it resumes from; a resumed optimizer state is loaded into `opt`.
fn starting_state(
    opt: &mut Opt,
    shared: Option<RunStart>,
    resumed: &Option<(PathBuf, TrainState)>,
    fresh: TrainState,
) -> Result<(TrainState, Option<u64>)> {
    Ok(match (shared, resumed) {
        (Some(start), _) => {
            if !start.optimizer.is_empty() {
                opt.load_state(start.optimizer)?;
            }
            let from = (start.state.step > 0).then_some(start.state.step);
            (start.state, from)
        }
        (None, Some((dir, state))) => {
            opt.load_state(read_optimizer(dir)?)?;
            (state.clone(), Some(state.step))
        }
        (None, None) => (fresh, None),
    })
}

/// The newest complete checkpoint of the run in `files`, its adapter loaded onto `lm`.
fn resume_point(lm: &mut Model, files: &RunFiles) -> Result<(PathBuf, TrainState)> {
    let Some((dir, state)) = checkpoint::latest(&files.checkpoints())? else {
        return Err(EngineError::InvalidRequest(format!(
            "{}: no complete checkpoint to resume from",
            files.checkpoints().display()
        )));
    };
    adapters::load_weights(lm, &dir.join(ADAPTERS_FILE))?;
    Ok((dir, state))
}

/// Replaces any adapters on `lm` with fresh ones for `config` (in its precision: f32 adapters
/// cast to a half compute type at use); returns how many trainable parameters they have.
fn attach_fresh(lm: &mut Model, config: &TrainConfig) -> Result<usize> {
    check_precision(lm, config.precision)?;
    adapters::remove(lm);
    let trainable = adapters::attach(lm, &config.adapter(), config.seed)?;
    let half = config
        .precision
        .dtype()
        .is_some_and(|d| d != Dtype::Float32);
    adapters::set_cast_to_input(lm, half);
    Ok(trainable)
}

/// Refuses a model held in another float type than `precision` asks for (it was loaded
/// without [`Precision::load_options`]).
fn check_precision(lm: &Model, precision: Precision) -> Result<()> {
    let held = lm.net().model.norm.weight.dtype();
    match precision.dtype() {
        Some(dtype) if dtype != held => Err(EngineError::InvalidRequest(format!(
            "precision {}: the model was loaded in {held:?}; load it with the precision's \
             load options",
            precision.name()
        ))),
        _ => Ok(()),
    }
}

/// The optimizer state of the checkpoint in `dir`.
fn read_optimizer(dir: &Path) -> Result<HashMap<String, Array>> {
    let file = dir.join(OPTIMIZER_FILE);
    Array::load_safetensors(&file)
        .map_err(|e| EngineError::InvalidRequest(format!("{}: {e}", file.display())))
}

/// Starts a session of `group`: every rank takes rank 0's state, adapter weights and
/// optimizer state (fresh or resumed), and the batch size every rank fits.
fn dp_start(
    group: &Group,
    lm: &mut Model,
    data: &TrainData<'_>,
    config: &TrainConfig,
    (trainable, seq_len): (usize, usize),
    estimate: MemoryEstimate,
    resumed: &Option<(PathBuf, TrainState)>,
) -> Result<(MemoryEstimate, RunStart)> {
    let fits = estimate.batch_size;
    let (state, optimizer) = match resumed {
        Some((dir, state)) => (state.clone(), read_optimizer(dir)?),
        None => (TrainState::fresh(config.seed, fits), HashMap::new()),
    };
    let weights = lm
        .net()
        .trainable_parameters()
        .flatten()
        .iter()
        .map(|(k, a)| (k.to_string(), (*a).clone()))
        .collect();
    let start = RunStart {
        state,
        examples: data.train.len(),
        weights,
        optimizer,
    };
    let mut start = dp::share_start(group, start)?;
    let weights = std::mem::take(&mut start.weights);
    lm.net_mut()
        .update_flattened(weights.into_iter().map(|(k, a)| (Rc::from(k), a)).collect());
    let batch = match start.state.step > 0 {
        true => start.state.batch_size.unwrap_or(config.batch_size),
        false => dp::agree_batch_size(group, fits, config.batch_size)?,
    };
    start.state.batch_size = Some(batch);
    let estimate = match batch == fits {
        true => estimate,
        false => memory::estimate(lm, config, trainable, batch, seq_len, memory::budget()),
    };
    Ok((estimate, start))
}

/// Writes the run's `adapter_config.json`: the configuration, with mlx-lm's
/// `lora_parameters` as the adapter records them.
fn write_adapter_config(config: &TrainConfig, lm: &Model, files: &RunFiles) -> Result<()> {
    let mut json = serde_json::to_value(config).unwrap_or_default();
    let mut lora = config.adapter().lora_parameters;
    if lm.args.moe.is_some() && lora.keys.is_none() {
        // mlx-lm would adapt the experts too: name the projections that are adapted.
        lora.keys = Some(adapters::attach::adapted_keys(lm));
    }
    if let Some(map) = json.as_object_mut() {
        map.insert(
            "lora_parameters".into(),
            serde_json::to_value(&lora).unwrap_or_default(),
        );
    }
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    replace_file(&files.config(), |p| {
        std::fs::write(p, &text).map_err(|e| EngineError::Write {
            path: p.to_path_buf(),
            message: e.to_string(),
        })
    })
}

/// Optimizer steps of a run of `config` over `batches_per_epoch` batches an epoch.
pub fn total_steps(config: &TrainConfig, batches_per_epoch: u64) -> u64 {
    let steps_per_epoch = batches_per_epoch.div_ceil(config.grad_accumulation_steps);
    match (config.iters, config.epochs) {
        (Some(iters), _) => iters,
        (None, Some(epochs)) => epochs * steps_per_epoch,
        (None, None) => 1000,
    }
}

/// The random seed of step `step` (dropout keys), the same on a resumed run.
fn step_seed(seed: u64, step: u64) -> u64 {
    let mut x = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (x >> 29)
}
