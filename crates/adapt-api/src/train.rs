//! Training runs: a run record, a `train` job that prepares the data (off the engine thread)
//! and has the engine thread train, metrics and checkpoints recorded as they come, and resume
//! from a run's newest checkpoint. A run's folder (`<data>/runs/<id>`) is an mlx-lm adapter
//! folder with a `checkpoints/` directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};

use adapt_data::PrepareReport;
use adapt_data::{DataOptions, PrepareInputs, Progress, Split, TokenCache};
use adapt_engine::load::{load, LoadOptions, LoadedModel};
use adapt_engine::train::{greedy_prober, train, Hooks, RunFiles, TrainData};
pub use adapt_engine::train::{
    AdapterConfig, FineTuneType, LoraParameters, LrSchedule, OptimizerKind, ProbeAnswer,
    TrainConfig, TrainEvent, TrainOutcome, TrainPlan, TrainReport, TrainStop,
};
use adapt_engine::{Backend, WeightFormat};
use adapt_store::{Metric, NewAdapter, NewRun, Status};
use serde::{Deserialize, Serialize};

use crate::engine_thread::Request;
use crate::jobs::{CancelToken, JobHandle, JobKind};
use crate::{Adapt, ApiError};

/// What to train: a model, data and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    /// A GGUF file or a model folder.
    pub model: PathBuf,
    pub data: PrepareInputs,
    pub data_options: DataOptions,
    /// Where prepared datasets are cached.
    pub cache_root: PathBuf,
    pub config: TrainConfig,
    /// The run's name (default: the model's and the data's file names).
    pub name: Option<String>,
}

/// A training request as the app's form gives it: paths, the CSV mapping, the validation
/// share and the settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainForm {
    pub model: String,
    pub dataset: String,
    /// How CSV records become examples (ignored for JSONL).
    pub csv: adapt_data::CsvOptions,
    /// Share of the examples held out for validation, 0..1.
    pub valid_share: f64,
    /// Train only on the answers (on) or on every token.
    pub mask_prompt: bool,
    pub config: TrainConfig,
    pub name: Option<String>,
}

impl TrainForm {
    /// The request, with prepared data cached under `cache_root`.
    pub fn request(self, cache_root: PathBuf) -> TrainRequest {
        let mut data_options = DataOptions::default();
        data_options.import.csv = self.csv;
        data_options.render.mask_prompt = self.mask_prompt;
        data_options.max_seq_length = self.config.max_seq_length as u32;
        TrainRequest {
            model: self.model.into(),
            data: PrepareInputs {
                train: self.dataset.into(),
                valid: None,
                test: None,
                ratios: adapt_data::SplitRatios {
                    valid: self.valid_share,
                    ..Default::default()
                },
            },
            data_options,
            cache_root,
            config: self.config,
            name: self.name.filter(|n| !n.trim().is_empty()),
        }
    }
}

/// What a training job streams to its caller.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "stage", content = "detail", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum TrainProgress {
    /// Reading and tokenizing the data.
    Preparing(Progress),
    /// The data is ready: examples per split, and whether the cache was reused.
    Prepared {
        train: u64,
        valid: u64,
        cached: bool,
    },
    /// Loading the model.
    Loading,
    Engine(TrainEvent),
}

/// A finished (or stopped) run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub run_id: i64,
    pub outcome: TrainOutcome,
}

/// A started training job.
pub struct TrainJob {
    handle: JobHandle,
    run_id: i64,
    outcome: Arc<Mutex<Option<TrainOutcome>>>,
}

impl TrainJob {
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    pub fn job_id(&self) -> i64 {
        self.handle.id()
    }

    /// Asks the run to stop; it writes a checkpoint first.
    pub fn cancel(&self) {
        self.handle.cancel();
    }

    /// A token that cancels the run (for a Ctrl-C handler).
    pub fn cancel_token(&self) -> CancelToken {
        self.handle.cancel_token()
    }

    /// Waits for the run to end.
    pub fn wait(self) -> Result<TrainSummary, ApiError> {
        let run_id = self.run_id;
        let record = self.handle.wait()?;
        let outcome = self
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match (outcome, record.error_code) {
            (Some(outcome), _) => Ok(TrainSummary { run_id, outcome }),
            (None, Some(code)) => Err(ApiError::new(
                code,
                record.error_message.unwrap_or_default(),
            )),
            (None, None) => Err(ApiError::new(
                "train.cancelled",
                format!("run {run_id} was cancelled before it started training"),
            )),
        }
    }
}

/// What the engine thread is asked to do.
pub(crate) struct TrainWork {
    model: PathBuf,
    train: PathBuf,
    valid: Option<PathBuf>,
    config: TrainConfig,
    dir: PathBuf,
    resume: bool,
}

impl TrainWork {
    /// The engine's work for `req` on its prepared data, writing into `dir`.
    fn new(
        req: &TrainRequest,
        report: &PrepareReport,
        dir: PathBuf,
        resume: bool,
    ) -> Result<TrainWork, ApiError> {
        let split = |s: Split| {
            report
                .splits
                .iter()
                .find(|x| x.split == s && x.examples > 0)
        };
        let Some(train) = split(Split::Train) else {
            return Err(ApiError::new(
                "train.no_data",
                "the training split is empty",
            ));
        };
        Ok(TrainWork {
            model: req.model.clone(),
            train: train.path.clone(),
            valid: split(Split::Valid).map(|v| v.path.clone()),
            config: req.config.clone(),
            dir,
            resume,
        })
    }

    /// Has the engine thread train, handing each of its events to `on_event` as it comes.
    fn run_on(
        self,
        engine: &Sender<Request>,
        cancel: CancelToken,
        mut on_event: impl FnMut(TrainEvent),
    ) -> Result<TrainOutcome, ApiError> {
        let (events_tx, events) = mpsc::channel();
        let (reply, answer) = mpsc::channel();
        engine
            .send(Request::Train {
                work: Box::new(self),
                events: events_tx,
                cancel,
                reply,
            })
            .map_err(|_| ApiError::engine_gone())?;
        // The engine drops its event sender when it is done, which ends this loop.
        for event in events {
            on_event(event);
        }
        answer.recv().map_err(|_| ApiError::engine_gone())?
    }

    /// Loads the model as it trains: a quantized model as it is stored (QLoRA), as in
    /// mlx-lm, on every backend.
    fn load_model(&self) -> Result<LoadedModel, ApiError> {
        let float = WeightFormat::for_backend(Backend::detect()).dtype;
        let options = LoadOptions {
            format: Some(WeightFormat {
                dtype: float,
                dequantize: false,
            }),
        };
        Ok(load(&self.model, &options)?)
    }

    /// Runs on the engine thread: what the run would take, without training.
    pub(crate) fn plan(self) -> Result<TrainPlan, ApiError> {
        let mut lm = self.load_model()?;
        let train_split = TokenCache::open(&self.train)?;
        Ok(adapt_engine::train::plan(
            &mut lm.model,
            &train_split,
            &self.config,
        )?)
    }

    /// Runs on the engine thread: loads the model, trains, streams events.
    pub(crate) fn run(
        self,
        events: &Sender<TrainEvent>,
        cancel: &CancelToken,
    ) -> Result<TrainOutcome, ApiError> {
        let mut lm = self.load_model()?;
        let train_split = TokenCache::open(&self.train)?;
        let valid_split = self.valid.as_deref().map(TokenCache::open).transpose()?;
        let data = TrainData {
            train: &train_split,
            valid: valid_split.as_ref(),
            pad_id: 0,
        };
        let LoadedModel {
            model,
            tokenizer,
            chat_template,
            ..
        } = &mut lm;
        let prober = greedy_prober(tokenizer, chat_template.as_ref());
        let hooks = Hooks {
            prober: Some(&prober),
            on_event: &mut |e| {
                let _ = events.send(e.clone());
            },
            cancel: &|| cancel.is_cancelled(),
        };
        let files = RunFiles { dir: self.dir };
        Ok(train(
            model,
            &data,
            &self.config,
            &files,
            self.resume,
            hooks,
        )?)
    }
}

/// What a run record keeps to run it again (`runs.config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunConfig {
    request: TrainRequest,
    /// The prepared dataset's cache key: a resumed run must see the same data.
    data_key: Option<String>,
}

/// Reads and tokenizes a request's data (or finds it prepared already), telling `on_progress`.
fn prepare_data(
    req: &TrainRequest,
    on_progress: &mut dyn FnMut(&TrainProgress),
) -> Result<PrepareReport, ApiError> {
    let text = crate::datasets::load_text_model(&req.model)?;
    let report = crate::datasets::prepare(
        &req.data,
        &req.data_options,
        &text,
        &req.cache_root,
        &mut |p| on_progress(&TrainProgress::Preparing(p)),
    )?;
    let count = |s: Split| {
        report
            .splits
            .iter()
            .find(|x| x.split == s)
            .map_or(0, |x| x.examples)
    };
    on_progress(&TrainProgress::Prepared {
        train: count(Split::Train),
        valid: count(Split::Valid),
        cached: report.cached,
    });
    Ok(report)
}

/// What a few real steps measured, beside the estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Calibration {
    /// The estimate the run started with (its batch size is the one that fits).
    pub plan: adapt_engine::train::memory::MemoryEstimate,
    /// Peak memory measured after the steps, in bytes.
    pub measured: u64,
    pub steps: u64,
    pub seconds_per_step: f64,
    pub tokens_per_second: f64,
}

/// Steps a calibration trains.
const CALIBRATION_STEPS: u64 = 3;

impl Adapt {
    /// What training `request` would take (trainable parameters, memory at the batch size
    /// that fits) without training: prepares the data and loads the model.
    pub fn plan_training(
        &self,
        request: &TrainRequest,
        mut on_progress: impl FnMut(&TrainProgress),
    ) -> Result<TrainPlan, ApiError> {
        check_request(request)?;
        let report = prepare_data(request, &mut on_progress)?;
        let work = TrainWork::new(request, &report, PathBuf::new(), false)?;
        on_progress(&TrainProgress::Loading);
        self.call(|reply| Request::PlanTrain {
            work: Box::new(work),
            reply,
        })
    }

    /// Trains `request` for a few steps into a scratch folder and reports the measured peak
    /// memory and speed beside the estimate. Records no run.
    pub fn calibrate_training(
        &self,
        request: &TrainRequest,
        mut on_progress: impl FnMut(&TrainProgress),
    ) -> Result<Calibration, ApiError> {
        check_request(request)?;
        let report = prepare_data(request, &mut on_progress)?;
        let scratch = std::env::temp_dir().join(format!("adapt-calibrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let result = self.calibrate_in(request, &report, &scratch, &mut on_progress);
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    fn calibrate_in(
        &self,
        request: &TrainRequest,
        report: &PrepareReport,
        scratch: &Path,
        on_progress: &mut dyn FnMut(&TrainProgress),
    ) -> Result<Calibration, ApiError> {
        let mut work = TrainWork::new(request, report, scratch.to_path_buf(), false)?;
        work.valid = None;
        let c = &mut work.config;
        c.iters = Some(CALIBRATION_STEPS);
        c.epochs = None;
        c.steps_per_report = 1;
        c.save_every = u64::MAX;
        c.probes.clear();
        c.early_stopping_patience = None;
        on_progress(&TrainProgress::Loading);
        let (mut plan, mut measured, mut speed) = (None, 0, 0.0);
        let outcome = work.run_on(self.sender()?, CancelToken::default(), |event| {
            match &event {
                TrainEvent::Started { memory, .. } => plan = Some(memory.clone()),
                TrainEvent::Calibrated { measured: m, .. } => measured = *m,
                TrainEvent::Report(r) => speed = r.tokens_per_second,
                _ => {}
            }
            on_progress(&TrainProgress::Engine(event));
        })?;
        let plan = plan
            .ok_or_else(|| ApiError::new("train.calibrate", "the calibration run did not start"))?;
        Ok(Calibration {
            plan,
            measured: measured.max(outcome.peak_memory),
            steps: outcome.steps,
            seconds_per_step: outcome.seconds / outcome.steps.max(1) as f64,
            tokens_per_second: speed,
        })
    }
}

/// Refuses a request whose settings or model are wrong, before any work.
fn check_request(request: &TrainRequest) -> Result<(), ApiError> {
    request
        .config
        .validate("training configuration")
        .map_err(ApiError::from)?;
    if !request.model.exists() {
        return Err(ApiError::new(
            "model.not_found",
            format!("{}: no such model file or folder", request.model.display()),
        ));
    }
    Ok(())
}

impl Adapt {
    /// Starts training `request` as a job. `on_progress` runs on the job's thread.
    pub fn start_training(
        &self,
        request: TrainRequest,
        on_progress: impl FnMut(&TrainProgress) + Send + 'static,
    ) -> Result<TrainJob, ApiError> {
        check_request(&request)?;
        let name = request.name.clone().unwrap_or_else(|| {
            let stem = |p: &Path| {
                p.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            format!("{} on {}", stem(&request.model), stem(&request.data.train))
        });
        let config = RunConfig {
            request,
            data_key: None,
        };
        let run = self.store()?.create_run(&NewRun {
            name,
            config: serde_json::to_string(&config).unwrap_or_default(),
            ..NewRun::default()
        })?;
        self.spawn_training(run.id, config, false, on_progress)
    }

    /// Resumes run `run_id` from its newest checkpoint, with the settings it started with.
    pub fn resume_training(
        &self,
        run_id: i64,
        on_progress: impl FnMut(&TrainProgress) + Send + 'static,
    ) -> Result<TrainJob, ApiError> {
        let run = self.run(run_id)?.run;
        if run.status == Status::Succeeded {
            return Err(ApiError::new(
                "train.finished",
                format!("run {run_id} already finished; start a new run to train further"),
            ));
        }
        let config: RunConfig = serde_json::from_str(&run.config).map_err(|e| {
            ApiError::new(
                "train.bad_run",
                format!("run {run_id} has no training configuration to resume with: {e}"),
            )
        })?;
        let dir = self.run_folder(run_id)?;
        if adapt_engine::train::trainer::run_state(&dir)?.is_none() {
            return Err(ApiError::new(
                "train.no_checkpoint",
                format!(
                    "run {run_id} has no complete checkpoint in {}; start it again instead",
                    dir.display()
                ),
            ));
        }
        self.spawn_training(run_id, config, true, on_progress)
    }

    fn spawn_training(
        &self,
        run_id: i64,
        mut config: RunConfig,
        resume: bool,
        mut on_progress: impl FnMut(&TrainProgress) + Send + 'static,
    ) -> Result<TrainJob, ApiError> {
        let dir = self.run_folder(run_id)?;
        let sender = self.sender()?.clone();
        let outcome: Arc<Mutex<Option<TrainOutcome>>> = Arc::default();
        let result = outcome.clone();
        let params = serde_json::json!({ "run": run_id, "resume": resume }).to_string();
        let handle = self.spawn_job(JobKind::Train, &params, Some(run_id), move |ctx| {
            ctx.store().set_run_status(run_id, Status::Running, None)?;
            let mut work = || -> Result<TrainOutcome, ApiError> {
                let req = &config.request;
                let report = prepare_data(req, &mut on_progress)?;
                if resume && config.data_key.as_deref().is_some_and(|k| k != report.key) {
                    return Err(ApiError::new(
                        "train.data_changed",
                        "the training data changed since this run started, so it cannot \
                         resume where it stopped; start a new run",
                    ));
                }
                if !resume {
                    config.data_key = Some(report.key.clone());
                    ctx.store().set_run_config(
                        run_id,
                        &serde_json::to_string(&config).unwrap_or_default(),
                    )?;
                }
                let work = TrainWork::new(req, &report, dir.clone(), resume)?;
                on_progress(&TrainProgress::Loading);
                let mut recorder = Recorder::default();
                work.run_on(&sender, ctx.cancel_token(), |event| {
                    // A busy store only delays what other processes see.
                    let _ = recorder.record(ctx, run_id, &event);
                    on_progress(&TrainProgress::Engine(event));
                })
            };
            let ended = work();
            let mut store = ctx.store();
            match &ended {
                Ok(o) if o.stop == TrainStop::Cancelled => {
                    store.set_run_status(run_id, Status::Cancelled, None)?;
                }
                Ok(_) => {
                    store.set_run_status(run_id, Status::Succeeded, None)?;
                    let name = store.run(run_id)?.name;
                    store.add_adapter(&NewAdapter {
                        name,
                        path: dir.clone(),
                        run_id: Some(run_id),
                        base_model_id: None,
                    })?;
                }
                Err(e) => {
                    store.set_run_status(run_id, Status::Failed, Some(&e.message))?;
                }
            }
            drop(store);
            let outcome = ended?;
            *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
            Ok(())
        })?;
        Ok(TrainJob {
            handle,
            run_id,
            outcome,
        })
    }
}

/// Turns engine events into stored metrics, checkpoints and job progress.
#[derive(Default)]
struct Recorder {
    /// The metrics row of each step written so far this session (an evaluation completes
    /// the row its step's report started).
    rows: BTreeMap<u64, Metric>,
    total: u64,
}

impl Recorder {
    fn record(
        &mut self,
        ctx: &crate::jobs::JobContext,
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
            TrainEvent::Calibrated { .. } => {}
        }
        Ok(())
    }
}

pub use adapt_engine::train::fuse::FuseReport;

impl Adapt {
    /// Where run `run_id` keeps its files (its adapter folder).
    fn run_folder(&self, run_id: i64) -> Result<PathBuf, ApiError> {
        Ok(self.data_dir()?.runs().join(run_id.to_string()))
    }

    /// The adapter folder of run `run_id`.
    pub fn run_dir(&self, run_id: i64) -> Result<PathBuf, ApiError> {
        let dir = self.run_folder(run_id)?;
        if !dir.join("adapter_config.json").is_file() {
            return Err(ApiError::new(
                "train.no_adapter",
                format!("run {run_id} has no adapter folder; `adapt runs list` shows the runs"),
            ));
        }
        Ok(dir)
    }

    /// An adapter given as a run id (`12`) or a folder path.
    pub fn resolve_adapter(&self, spec: &str) -> Result<PathBuf, ApiError> {
        match spec.parse::<i64>() {
            Ok(id) if !Path::new(spec).exists() => self.run_dir(id),
            _ => Ok(PathBuf::from(spec)),
        }
    }

    /// Fuses the adapter folder `adapter` into the model `src`, writing the model folder `out`.
    pub fn fuse_adapter(
        &self,
        src: &Path,
        adapter: &Path,
        out: &Path,
        dequantize: bool,
        on_step: impl FnMut(&str),
    ) -> Result<FuseReport, ApiError> {
        let (src, adapter, out) = (src.to_path_buf(), adapter.to_path_buf(), out.to_path_buf());
        self.with_steps(
            |progress, reply| Request::Fuse {
                src,
                adapter,
                out,
                dequantize,
                progress,
                reply,
            },
            on_step,
        )
    }
}

/// Reads a training configuration file (YAML or JSON; mlx-lm's keys and ours).
pub fn read_config_file(path: &Path) -> Result<TrainConfig, ApiError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ApiError::new(
            "train.bad_config",
            format!("{}: cannot read: {e}", path.display()),
        )
    })?;
    let value: serde_json::Value = serde_yaml::from_str(&text)
        .map_err(|e| ApiError::new("train.bad_config", format!("{}: {e}", path.display())))?;
    let value = if value.is_null() {
        serde_json::json!({})
    } else {
        value
    };
    TrainConfig::from_value(value, &path.display().to_string())
        .map_err(|e| ApiError::new("train.bad_config", e.to_string()))
}
