//! Hyperparameter sweeps: one job prepares the data once, loads the base model once onto the
//! engine thread, and trains trial after trial on it — adapters attached fresh, optimizer
//! fresh — each trial a run in the store linked to its sweep. The sampler (`adapt-sweep`)
//! chooses each trial's values from the trials before; successive halving judges a trial at
//! each rung on the engine thread, between steps, and a pruned trial stops with a checkpoint.
//! The best completed trial is promoted (its adapter listed as the sweep's best).
//!
//! A sweep stopped by Ctrl-C or killed resumes where it stopped ([`Adapt::resume_sweep`]): the
//! trial that was training goes on from its newest checkpoint with the values it drew, and no
//! trial is drawn twice. A rung's loss is in the store before training goes past the rung, so
//! a resumed trial is judged on what it had reached.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapt_data::PrepareReport;
use adapt_engine::train::{run_state, TrainConfig, TrainEvent, TrainStop};
use adapt_store::{NewAdapter, NewRun, Status, SweepRecord, TrialRecord, TrialState};
use adapt_sweep::{apply, Halving, Observation, Params, SweepSpec};
use serde::{Deserialize, Serialize};

use crate::adapt::Adapt;
use crate::engine_thread::EngineHandle;
use crate::error::{ApiError, ErrorCode};
use crate::jobs::{JobContext, JobHandle, JobKind, JobStatus};
use crate::train::{load_for_training, prepare_data, RunConfig, TrainProgress, TrainWork};
use crate::train_form::TrainRequest;
use crate::train_record::Recorder;

/// Settings a sweep may search that the defaults leave unset.
const EXTRA_KNOBS: &[&str] = &["lora_parameters.keys"];

/// What to sweep: a training request (model, data, the settings the trials start from) and
/// the definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRequest {
    pub request: TrainRequest,
    pub spec: SweepSpec,
    /// The sweep's name (default: the training request's).
    pub name: Option<String>,
}

/// What a sweep record keeps to run it again (`sweeps.spec`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SweepPlan {
    request: TrainRequest,
    spec: SweepSpec,
    /// The prepared dataset's cache key: a resumed sweep must see the same data.
    data_key: Option<String>,
}

/// What a sweep job streams to its caller.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "stage", content = "detail", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum SweepProgress {
    /// The first event: which sweep it is.
    Sweep {
        sweep_id: i64,
        resumed: bool,
    },
    /// Preparing the data and loading the model, once for every trial.
    Setup(TrainProgress),
    TrialStarted {
        number: u64,
        run_id: i64,
        #[cfg_attr(feature = "ts", ts(type = "Record<string, unknown>"))]
        params: serde_json::Value,
        resumed: bool,
    },
    /// A training event of trial `number`.
    Trial {
        number: u64,
        event: TrainEvent,
    },
    TrialEnded(TrialRecord),
    /// The last event: how the sweep ended.
    Ended(SweepEnd),
}

/// How a sweep job ended.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SweepEnd {
    pub sweep_id: i64,
    pub status: JobStatus,
    /// The promoted trial, when one completed.
    pub best: Option<TrialRecord>,
    pub error: Option<ApiError>,
}

/// A sweep with its trials, best first.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SweepDetails {
    pub sweep: SweepRecord,
    /// Trials ranked: completed by validation loss, then pruned ones by how far they got,
    /// then the rest.
    pub trials: Vec<TrialRecord>,
    /// The rungs (steps) of a trial, when every trial has the same budget.
    pub rungs: Vec<u64>,
    /// The model every trial trains (the base of their adapters).
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub model: Option<PathBuf>,
    /// Each trial's validation losses as its run recorded them, in the order of `trials`.
    pub curves: Vec<TrialCurve>,
}

/// A trial's validation loss at each evaluation.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrialCurve {
    pub number: u64,
    /// `(step, validation loss)`.
    pub points: Vec<(u64, f64)>,
}

/// A started sweep.
pub struct SweepJob {
    handle: JobHandle,
    sweep_id: i64,
    best: Arc<Mutex<Option<TrialRecord>>>,
}

impl SweepJob {
    pub fn sweep_id(&self) -> i64 {
        self.sweep_id
    }

    /// Asks the sweep to stop; the trial in training writes a checkpoint first.
    pub fn cancel(&self) {
        self.handle.cancel();
    }

    pub fn cancel_token(&self) -> crate::jobs::CancelToken {
        self.handle.cancel_token()
    }

    /// Waits for the sweep to end; returns its promoted trial.
    pub fn wait(self) -> Result<Option<TrialRecord>, ApiError> {
        let record = self.handle.wait()?;
        if let Some(code) = record.error_code {
            return Err(ApiError::coded(
                &code,
                record.error_message.unwrap_or_default(),
            ));
        }
        Ok(self.best.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The settings trials start from, as JSON (the knobs are its settings).
fn base_json(config: &TrainConfig) -> serde_json::Value {
    serde_json::to_value(config).unwrap_or_default()
}

/// Reads a sweep definition (parsed YAML or JSON) over `base`, the settings trials start from.
pub fn read_sweep_spec(
    value: serde_json::Value,
    source: &str,
    base: &TrainConfig,
) -> Result<SweepSpec, ApiError> {
    Ok(SweepSpec::from_value(
        value,
        source,
        &base_json(base),
        EXTRA_KNOBS,
    )?)
}

/// Reads a sweep definition file (YAML or JSON).
pub fn read_sweep_file(path: &std::path::Path, base: &TrainConfig) -> Result<SweepSpec, ApiError> {
    let text = std::fs::read_to_string(path).map_err(|e| ApiError::io("read", path, e))?;
    let value: serde_json::Value = serde_yaml::from_str(&text)
        .map_err(|e| ApiError::new(ErrorCode::SweepBadField, format!("{}: {e}", path.display())))?;
    read_sweep_spec(value, &path.display().to_string(), base)
}

/// Trial `number`'s settings: the base, the fixed settings and its values, with evaluations
/// and checkpoints at every rung; and its rungs.
fn trial_config(
    plan: &SweepPlan,
    params: &Params,
    number: u64,
) -> Result<(TrainConfig, Halving), ApiError> {
    let value = apply(&plan.spec.base(&base_json(&plan.request.config)), params);
    let mut config = TrainConfig::from_value(value, &format!("trial {number}"))
        .map_err(|e| ApiError::new(ErrorCode::TrainBadConfig, e.to_string()))?;
    let Some(steps) = config.iters else {
        return Err(ApiError::new(
            ErrorCode::SweepNeedsSteps,
            "a sweep gives each trial a budget in steps: set iters (in fixed, the training \
             configuration or --iters)",
        ));
    };
    let halving = plan.spec.halving(steps);
    config.epochs = None;
    config.steps_per_eval = halving.eval_every();
    config.save_every = halving.eval_every();
    Ok((config, halving))
}

/// What the sampler learns from a trial that ended.
fn observation(t: &TrialRecord) -> Option<Observation> {
    let params: Params = serde_json::from_str(&t.params).ok()?;
    let (rungs_reached, value) = match t.state {
        TrialState::Running => return None,
        TrialState::Failed => (0, f64::INFINITY),
        _ => (
            t.rung_losses.len(),
            t.rung_losses.last().copied().unwrap_or(f64::INFINITY),
        ),
    };
    Some(Observation {
        params,
        rungs_reached,
        value,
    })
}

/// Trials best first (failed and unfinished ones last).
fn ranked(mut trials: Vec<TrialRecord>) -> Vec<TrialRecord> {
    let key = |t: &TrialRecord| match t.state {
        TrialState::Completed | TrialState::Pruned => 0,
        TrialState::Running => 1,
        TrialState::Failed => 2,
    };
    trials.sort_by(|a, b| {
        key(a).cmp(&key(b)).then_with(|| {
            let obs = |t: &TrialRecord| Observation {
                params: Params::new(),
                rungs_reached: t.rung_losses.len(),
                value: match t.state {
                    TrialState::Completed => t.best_val_loss.unwrap_or(f64::INFINITY),
                    _ => t.rung_losses.last().copied().unwrap_or(f64::INFINITY),
                },
            };
            Observation::better_first(&obs(a), &obs(b))
        })
    });
    trials
}

/// The promoted trial: the completed one with the lowest validation loss.
fn best_trial(trials: &[TrialRecord]) -> Option<TrialRecord> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Completed && t.best_val_loss.is_some())
        .min_by(|a, b| {
            let v = |t: &TrialRecord| t.best_val_loss.unwrap_or(f64::INFINITY);
            v(a).total_cmp(&v(b))
        })
        .cloned()
}

impl Adapt {
    /// Starts sweep `req` as a job. `on_progress` runs on the job's thread; its last event is
    /// [`SweepProgress::Ended`].
    pub fn start_sweep(
        &self,
        req: SweepRequest,
        on_progress: impl FnMut(&SweepProgress) + Send + 'static,
    ) -> Result<SweepJob, ApiError> {
        self.check_request(&req.request)?;
        let plan = SweepPlan {
            request: req.request,
            spec: req.spec,
            data_key: None,
        };
        // The first trial's settings are checked now, not in the job.
        let first = plan.spec.sampler().suggest(&plan.spec.space, 0, &[]);
        trial_config(&plan, &first, 0)?;
        let name = req
            .name
            .or_else(|| plan.request.name.clone())
            .unwrap_or_else(|| {
                let stem = |p: &std::path::Path| {
                    p.file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                format!(
                    "sweep of {} on {}",
                    stem(&plan.request.model),
                    stem(&plan.request.data.train)
                )
            });
        let spec = serde_json::to_string(&plan).unwrap_or_default();
        let sweep = self.store()?.create_sweep(&name, &spec)?;
        self.spawn_sweep(sweep.id, plan, false, on_progress)
    }

    /// Resumes sweep `id` where it stopped: the trial in training goes on from its newest
    /// checkpoint, then new trials are drawn until the budget is spent.
    pub fn resume_sweep(
        &self,
        id: i64,
        on_progress: impl FnMut(&SweepProgress) + Send + 'static,
    ) -> Result<SweepJob, ApiError> {
        let sweep = self.sweep(id)?;
        if sweep.status == Status::Succeeded {
            return Err(ApiError::new(
                ErrorCode::SweepFinished,
                format!("sweep {id} already finished; `adapt sweep show {id}` shows its trials"),
            ));
        }
        if let Some(job) = self.sweep_job_of(id)? {
            return Err(ApiError::new(
                ErrorCode::SweepRunning,
                format!(
                    "sweep {id} is running (job {}); stop it with `adapt jobs cancel {}` first",
                    job.id, job.id
                ),
            ));
        }
        let plan: SweepPlan = serde_json::from_str(&sweep.spec).map_err(|e| {
            ApiError::new(
                ErrorCode::SweepBadRecord,
                format!("sweep {id} has no definition to resume with: {e}"),
            )
        })?;
        self.spawn_sweep(id, plan, true, on_progress)
    }

    /// The job running sweep `id` now (in this process or another), if one is.
    fn sweep_job_of(&self, id: i64) -> Result<Option<crate::jobs::JobRecord>, ApiError> {
        Ok(self.jobs()?.into_iter().find(|j| {
            j.kind == JobKind::Sweep.as_str()
                && matches!(j.status, JobStatus::Queued | JobStatus::Running)
                && serde_json::from_str::<serde_json::Value>(&j.params)
                    .is_ok_and(|p| p["sweep"] == id)
        }))
    }

    /// Stops sweep `id` (whichever window or process runs it); the trial in training writes a
    /// checkpoint first, and [`Adapt::resume_sweep`] goes on from it.
    pub fn stop_sweep(&self, id: i64) -> Result<(), ApiError> {
        self.sweep(id)?;
        match self.sweep_job_of(id)? {
            Some(job) => self.cancel_job(job.id).map(|_| ()),
            None => Err(ApiError::new(
                ErrorCode::SweepNotRunning,
                format!("sweep {id} is not running"),
            )),
        }
    }

    /// Every sweep, newest first.
    pub fn sweeps(&self) -> Result<Vec<SweepRecord>, ApiError> {
        self.jobs()?;
        Ok(self.store()?.sweeps()?)
    }

    fn sweep(&self, id: i64) -> Result<SweepRecord, ApiError> {
        self.store()?.sweep(id).map_err(|e| match e.code() {
            "store.not_found" => ApiError::new(
                ErrorCode::SweepNotFound,
                format!("there is no sweep {id}; `adapt sweep list` shows the sweeps"),
            ),
            _ => e.into(),
        })
    }

    /// Sweep `id` with its trials ranked, best first.
    pub fn sweep_details(&self, id: i64) -> Result<SweepDetails, ApiError> {
        self.jobs()?;
        let sweep = self.sweep(id)?;
        let trials = ranked(self.store()?.trials(id)?);
        let plan = serde_json::from_str::<SweepPlan>(&sweep.spec).ok();
        let rungs = plan
            .as_ref()
            .and_then(|plan| {
                let base = plan.spec.base(&base_json(&plan.request.config));
                let iters = base["iters"].as_u64()?;
                let knob = plan.spec.space.knobs.iter().any(|(k, _)| k == "iters");
                (!knob).then(|| plan.spec.halving(iters).rungs)
            })
            .unwrap_or_default();
        let store = self.store()?;
        let mut curves = Vec::new();
        for t in &trials {
            if let Some(run_id) = t.run_id {
                let points = store
                    .metrics(run_id, None)?
                    .into_iter()
                    .filter_map(|m| Some((m.step, m.val_loss?)))
                    .collect();
                curves.push(TrialCurve {
                    number: t.number,
                    points,
                });
            }
        }
        Ok(SweepDetails {
            sweep,
            trials,
            rungs,
            model: plan.map(|p| p.request.model),
            curves,
        })
    }

    fn spawn_sweep(
        &self,
        sweep_id: i64,
        plan: SweepPlan,
        resume: bool,
        on_progress: impl FnMut(&SweepProgress) + Send + 'static,
    ) -> Result<SweepJob, ApiError> {
        let side = SweepSide {
            engine: self.engine.handle(),
            dataset_cache: self.dataset_cache(),
            runs: self.data_dir()?.runs(),
        };
        let best: Arc<Mutex<Option<TrialRecord>>> = Arc::default();
        let (kept, ended) = (best.clone(), best.clone());
        let on_progress = Arc::new(Mutex::new(on_progress));
        let tell = on_progress.clone();
        let params = serde_json::json!({ "sweep": sweep_id, "resume": resume }).to_string();
        let handle = self.records.job_runner()?.spawn(
            JobKind::Sweep,
            &params,
            None,
            move |ctx| {
                let mut progress =
                    |p: &SweepProgress| (tell.lock().unwrap_or_else(|e| e.into_inner()))(p);
                progress(&SweepProgress::Sweep {
                    sweep_id,
                    resumed: resume,
                });
                let ended = side.sweep_job(ctx, sweep_id, plan, resume, &mut progress);
                // The model is dropped whatever happened.
                let _ = side.engine.call(|state| {
                    state.sweep_base = None;
                    Ok(())
                });
                let status = match &ended {
                    _ if ctx.is_cancelled() => Status::Cancelled,
                    Ok(_) => Status::Succeeded,
                    Err(_) => Status::Failed,
                };
                let error = ended.as_ref().err().map(|e| e.message.as_str());
                ctx.store().set_sweep_status(sweep_id, status, error)?;
                *kept.lock().unwrap_or_else(|p| p.into_inner()) = ended.clone().ok().flatten();
                ended.map(|_| ())
            },
            move |_, status, error| {
                let end = SweepEnd {
                    sweep_id,
                    status,
                    best: ended.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                    error: error.cloned(),
                };
                (on_progress.lock().unwrap_or_else(|e| e.into_inner()))(&SweepProgress::Ended(end));
            },
        )?;
        Ok(SweepJob {
            handle,
            sweep_id,
            best,
        })
    }
}

/// What a sweep job's thread needs of the API.
struct SweepSide {
    engine: EngineHandle,
    dataset_cache: Result<PathBuf, ApiError>,
    runs: PathBuf,
}

/// How one trial's training ended.
enum TrialEnd {
    Trained(adapt_engine::train::TrainOutcome, bool),
    PrunedBefore(usize),
    Failed(ApiError),
}

impl SweepSide {
    /// On the job's thread: prepares the data and loads the model once, runs trials until the
    /// budget is spent, and promotes the best.
    fn sweep_job(
        &self,
        ctx: &JobContext,
        sweep_id: i64,
        mut plan: SweepPlan,
        resume: bool,
        progress: &mut dyn FnMut(&SweepProgress),
    ) -> Result<Option<TrialRecord>, ApiError> {
        ctx.store()
            .set_sweep_status(sweep_id, Status::Running, None)?;
        let report = prepare_data(&plan.request, &self.dataset_cache.clone()?, &mut |p| {
            progress(&SweepProgress::Setup(p.clone()))
        })?;
        if resume && plan.data_key.as_deref().is_some_and(|k| k != report.key) {
            return Err(ApiError::new(
                ErrorCode::TrainDataChanged,
                "the training data changed since this sweep started, so it cannot resume; \
                 start a new sweep",
            ));
        }
        if plan.data_key.is_none() {
            plan.data_key = Some(report.key.clone());
            let json = serde_json::to_string(&plan).unwrap_or_default();
            ctx.store().set_sweep_spec(sweep_id, &json)?;
        }
        progress(&SweepProgress::Setup(TrainProgress::Loading));
        let model = plan.request.model.clone();
        let precision = plan.request.config.precision;
        self.engine.call(move |state| {
            state.sweep_base = None;
            let lm = load_for_training(&model, precision)?;
            state.sweep_base = Some((model.clone(), precision, lm));
            Ok(())
        })?;
        let name = ctx.store().sweep(sweep_id)?.name;
        let sampler = plan.spec.sampler();
        loop {
            let trials = ctx.store().trials(sweep_id)?;
            if ctx.is_cancelled() {
                return Ok(None);
            }
            let spent: f64 = trials.iter().map(|t| t.seconds).sum();
            let (trial, resumed) = match trials.iter().find(|t| t.state == TrialState::Running) {
                Some(t) => (t.clone(), true),
                None if trials.len() as u64 >= plan.spec.trials => break,
                None if plan.spec.max_minutes.is_some_and(|m| spent >= m * 60.0) => break,
                None => {
                    let number = trials.len() as u64;
                    let seen: Vec<Observation> = trials.iter().filter_map(observation).collect();
                    let params = sampler.suggest(&plan.spec.space, number, &seen);
                    // The run keeps the settings the trial trains with (the base when they
                    // cannot be made: the trial then fails saying why).
                    let mut request = plan.request.clone();
                    if let Ok((config, _)) = trial_config(&plan, &params, number) {
                        request.config = config;
                    }
                    let run = RunConfig {
                        request,
                        data_key: Some(report.key.clone()),
                    };
                    let new_run = NewRun {
                        name: format!("{name} · trial {number}"),
                        config: serde_json::to_string(&run).unwrap_or_default(),
                        ..NewRun::default()
                    };
                    let params = serde_json::to_string(&params).unwrap_or_default();
                    let trial = ctx
                        .store()
                        .start_trial(sweep_id, number, &params, &new_run)?;
                    (trial, false)
                }
            };
            let earlier: Vec<TrialRecord> = trials
                .into_iter()
                .filter(|t| t.number < trial.number)
                .collect();
            self.run_trial(ctx, &plan, &report, trial, resumed, &earlier, progress)?;
        }
        let best = best_trial(&ctx.store().trials(sweep_id)?);
        if let Some(run_id) = best.as_ref().and_then(|b| b.run_id) {
            let mut store = ctx.store();
            store.set_sweep_best(sweep_id, Some(run_id))?;
            store.add_adapter(&NewAdapter {
                name: format!("{name} (best)"),
                path: self.runs.join(run_id.to_string()),
                run_id: Some(run_id),
                base_model_id: None,
            })?;
        }
        Ok(best)
    }

    /// Trains trial `trial` (going on from its checkpoint when `resumed`), judged at each
    /// rung against the `earlier` trials, and records how it ended.
    #[allow(clippy::too_many_arguments)]
    fn run_trial(
        &self,
        ctx: &JobContext,
        plan: &SweepPlan,
        report: &PrepareReport,
        mut trial: TrialRecord,
        resumed: bool,
        earlier: &[TrialRecord],
        progress: &mut dyn FnMut(&SweepProgress),
    ) -> Result<(), ApiError> {
        let number = trial.number;
        let run_id = trial.run_id.ok_or_else(|| {
            ApiError::new(
                ErrorCode::SweepBadRecord,
                format!("trial {number} lost its run; start a new sweep"),
            )
        })?;
        let params: Params = serde_json::from_str(&trial.params).unwrap_or_default();
        progress(&SweepProgress::TrialStarted {
            number,
            run_id,
            params: serde_json::to_value(&params).unwrap_or_default(),
            resumed,
        });
        let end = match trial_config(plan, &params, number) {
            Err(e) => TrialEnd::Failed(e),
            Ok((config, halving)) => {
                let at_rungs: Vec<Vec<f64>> = (0..halving.rungs.len())
                    .map(|r| {
                        earlier
                            .iter()
                            .filter_map(|t| t.rung_losses.get(r).copied())
                            .collect()
                    })
                    .collect();
                let judged = trial
                    .rung_losses
                    .iter()
                    .enumerate()
                    .position(|(r, v)| !halving.promote(r, *v, &at_rungs[r]));
                match judged {
                    Some(rung) => TrialEnd::PrunedBefore(rung),
                    None => {
                        let req = TrainRequest {
                            config,
                            ..plan.request.clone()
                        };
                        let trained = self.train_trial(
                            ctx,
                            &req,
                            report,
                            &mut trial,
                            (halving, at_rungs),
                            progress,
                        );
                        match trained {
                            Ok((outcome, pruned)) => TrialEnd::Trained(outcome, pruned),
                            Err(_) if ctx.is_cancelled() => return Ok(()),
                            Err(e) => TrialEnd::Failed(e),
                        }
                    }
                }
            }
        };
        self.record_trial(ctx, trial, run_id, end, progress)
    }

    /// Trains one trial on the loaded model, storing each rung's loss before training goes
    /// past it. Returns the outcome and whether the trial was pruned.
    fn train_trial(
        &self,
        ctx: &JobContext,
        req: &TrainRequest,
        report: &PrepareReport,
        trial: &mut TrialRecord,
        (halving, at_rungs): (Halving, Vec<Vec<f64>>),
        progress: &mut dyn FnMut(&SweepProgress),
    ) -> Result<(adapt_engine::train::TrainOutcome, bool), ApiError> {
        let run_id = trial.run_id.unwrap_or_default();
        let dir = self.runs.join(run_id.to_string());
        let resume = run_state(&dir)?.is_some();
        let work = TrainWork::new(req, report, dir, resume)?;
        if work.valid.is_none() {
            return Err(ApiError::new(
                ErrorCode::SweepNeedsValidation,
                "a sweep compares trials on validation loss: give validation data (--valid) or \
                 hold out a share of the data",
            ));
        }
        ctx.store().set_run_status(run_id, Status::Running, None)?;
        let cancel = ctx.cancel_token();
        let (ack, acked) = mpsc::channel::<()>();
        let judge = halving.clone();
        let mut recorder = Recorder::default();
        let number = trial.number;
        self.engine.relay(
            move |state, emit| {
                // A trial that searches the precision needs the base held in its own (the
                // old one is dropped first: two copies may not fit).
                let precision = work.config.precision;
                if let Some((model, _, _)) = state.sweep_base.take_if(|b| b.1 != precision) {
                    let lm = load_for_training(&model, precision)?;
                    state.sweep_base = Some((model, precision, lm));
                }
                let Some((_, _, lm)) = state.sweep_base.as_mut() else {
                    return Err(ApiError::no_model());
                };
                let pruned = Cell::new(false);
                let outcome =
                    work.run_on(lm, &|| pruned.get() || cancel.is_cancelled(), &mut |e| {
                        emit(e.clone());
                        if let TrainEvent::Evaluated { step, val_loss, .. } = e {
                            if let Some(rung) = judge.rung_at(*step) {
                                // The job thread stores the rung's loss before training goes on.
                                let _ = acked.recv_timeout(Duration::from_secs(60));
                                if !judge.promote(rung, *val_loss, &at_rungs[rung]) {
                                    pruned.set(true);
                                }
                            }
                        }
                    })?;
                Ok((outcome, pruned.get()))
            },
            |event: TrainEvent| {
                // A busy store only delays what other processes see.
                let _ = recorder.record(ctx, run_id, &event);
                if let TrainEvent::Evaluated { step, val_loss, .. } = &event {
                    if let Some(rung) = halving.rung_at(*step) {
                        trial.rung_losses.truncate(rung);
                        trial.rung_losses.resize(rung, f64::NAN);
                        trial.rung_losses.push(*val_loss);
                        trial.steps = *step;
                        let _ = ctx.store().update_trial(trial);
                        let _ = ack.send(());
                    }
                }
                progress(&SweepProgress::Trial { number, event });
            },
        )
    }

    /// Records how a trial ended: its row, its run's status, and the event.
    fn record_trial(
        &self,
        ctx: &JobContext,
        mut trial: TrialRecord,
        run_id: i64,
        end: TrialEnd,
        progress: &mut dyn FnMut(&SweepProgress),
    ) -> Result<(), ApiError> {
        let (state, run_status, reason) = match &end {
            TrialEnd::Trained(o, true) => (
                TrialState::Pruned,
                Status::Cancelled,
                format!(
                    "pruned at step {}: validation loss {:.4} not among the best at this rung",
                    o.steps,
                    trial.rung_losses.last().copied().unwrap_or(f64::NAN)
                ),
            ),
            TrialEnd::PrunedBefore(rung) => (
                TrialState::Pruned,
                Status::Cancelled,
                format!("pruned at rung {}", rung + 1),
            ),
            TrialEnd::Trained(o, false) if o.stop == TrainStop::Cancelled => {
                // Stopped by the person: the trial goes on when the sweep resumes.
                trial.steps = o.steps;
                trial.seconds = o.seconds;
                ctx.store().update_trial(&trial)?;
                ctx.store()
                    .set_run_status(run_id, Status::Cancelled, None)?;
                return Ok(());
            }
            TrialEnd::Trained(o, false) => (
                TrialState::Completed,
                Status::Succeeded,
                match o.stop {
                    TrainStop::EarlyStopped => format!("stopped early at step {}", o.steps),
                    _ => format!("trained all {} steps", o.steps),
                },
            ),
            TrialEnd::Failed(e) => (TrialState::Failed, Status::Failed, e.message.clone()),
        };
        if let TrialEnd::Trained(o, _) = &end {
            trial.steps = o.steps;
            trial.seconds = o.seconds;
            trial.best_val_loss = o.best_val_loss;
        }
        trial.state = state;
        trial.reason = Some(reason.clone());
        let error = (state == TrialState::Failed).then_some(reason.as_str());
        ctx.store().set_run_status(run_id, run_status, error)?;
        ctx.store().update_trial(&trial)?;
        progress(&SweepProgress::TrialEnded(trial));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(number: u64, state: TrialState, losses: &[f64], best: Option<f64>) -> TrialRecord {
        TrialRecord {
            sweep_id: 1,
            number,
            run_id: Some(number as i64 + 1),
            params: format!(r#"{{"learning_rate": {}}}"#, number as f64 / 10.0),
            state,
            rung_losses: losses.to_vec(),
            best_val_loss: best,
            steps: 0,
            seconds: 0.0,
            reason: None,
        }
    }

    #[test]
    fn trials_rank_completed_by_loss_then_pruned_by_depth() {
        let order: Vec<u64> = ranked(vec![
            trial(0, TrialState::Failed, &[], None),
            trial(1, TrialState::Pruned, &[2.0], Some(2.0)),
            trial(2, TrialState::Completed, &[2.0, 1.8, 1.5], Some(1.4)),
            trial(3, TrialState::Completed, &[1.9, 1.7, 1.2], Some(1.2)),
            trial(4, TrialState::Pruned, &[1.9, 1.9], Some(1.9)),
            trial(5, TrialState::Running, &[1.0], None),
        ])
        .iter()
        .map(|t| t.number)
        .collect();
        assert_eq!(order, [3, 2, 4, 1, 5, 0]);
    }

    #[test]
    fn the_best_is_the_completed_trial_with_the_lowest_loss() {
        let trials = [
            trial(0, TrialState::Pruned, &[0.5], Some(0.5)),
            trial(1, TrialState::Completed, &[2.0, 1.8, 1.5], Some(1.4)),
            trial(2, TrialState::Completed, &[1.9, 1.7, 1.2], Some(1.2)),
        ];
        assert_eq!(best_trial(&trials).map(|t| t.number), Some(2));
        assert_eq!(best_trial(&trials[..1]), None);
    }

    #[test]
    fn observations_rank_failures_last_and_skip_running_trials() {
        let failed = observation(&trial(0, TrialState::Failed, &[1.0], None)).unwrap();
        assert_eq!((failed.rungs_reached, failed.value), (0, f64::INFINITY));
        let pruned = observation(&trial(1, TrialState::Pruned, &[2.0, 1.5], None)).unwrap();
        assert_eq!((pruned.rungs_reached, pruned.value), (2, 1.5));
        assert_eq!(
            observation(&trial(2, TrialState::Running, &[1.0], None)),
            None
        );
    }
}
