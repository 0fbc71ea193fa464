//! Training runs: a run record, a `train` job that prepares the data (off the engine thread)
//! and has the engine thread train, metrics and checkpoints recorded as they come, resume from
//! a run's newest checkpoint, and stop. A run's folder (`<data>/runs/<id>`) is an mlx-lm
//! adapter folder with a `checkpoints/` directory.
//!
//! A training job's progress stream ([`TrainProgress`]) always ends with
//! [`TrainProgress::Ended`]: succeeded, failed or cancelled, with the outcome or the error.
//! Planning and calibrating (no run recorded) are plain calls.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use adapt_data::{PrepareReport, Progress, Split, TokenCache};
use adapt_engine::distributed::share_from_rank0;
use adapt_engine::load::{load, LoadedModel};
use adapt_engine::train::{
    greedy_prober, plan, run_state, train, Hooks, MemoryEstimate, Precision, RunFiles, TrainConfig,
    TrainData, TrainEvent, TrainOutcome, TrainPlan, TrainStop,
};
use adapt_store::{NewAdapter, NewRun, Status};
use serde::{Deserialize, Serialize};

use crate::adapt::Adapt;
use crate::engine_thread::EngineHandle;
use crate::error::{ApiError, ErrorCode};
use crate::jobs::{CancelToken, JobContext, JobHandle, JobKind, JobStatus};
use crate::train_form::TrainRequest;
use crate::train_record::Recorder;

/// What a training job streams to its caller.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "stage", content = "detail", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum TrainProgress {
    /// The first event of a training job: which run it is.
    Run {
        run_id: i64,
        resumed: bool,
    },
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
    /// The last event of a training job: how it ended.
    Ended(TrainEnd),
}

/// How a training job ended.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainEnd {
    pub run_id: i64,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: JobStatus,
    /// How the run ended (a cancelled run's, too, when it had started training).
    pub outcome: Option<TrainOutcome>,
    pub error: Option<ApiError>,
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
        match (take(&self.outcome), record.error_code) {
            (Some(outcome), _) => Ok(TrainSummary { run_id, outcome }),
            (None, Some(code)) => Err(ApiError::coded(
                &code,
                record.error_message.unwrap_or_default(),
            )),
            (None, None) => Err(ApiError::new(
                ErrorCode::TrainCancelled,
                format!("run {run_id} was cancelled before it started training"),
            )),
        }
    }
}

fn take<T: Clone>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// What a run record keeps to run it again (`runs.config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunConfig {
    pub(crate) request: TrainRequest,
    /// The prepared dataset's cache key: a resumed run must see the same data.
    pub(crate) data_key: Option<String>,
}

/// What the engine thread trains: the model, the prepared splits and the settings.
pub(crate) struct TrainWork {
    model: PathBuf,
    train: PathBuf,
    pub(crate) valid: Option<PathBuf>,
    pub(crate) config: TrainConfig,
    dir: PathBuf,
    resume: bool,
}

impl TrainWork {
    /// The engine's work for `req` on its prepared data, writing into `dir`.
    pub(crate) fn new(
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
                ErrorCode::TrainNoData,
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

    /// On the engine thread: loads the model as it trains, trains, and emits each event.
    pub(crate) fn run(
        self,
        cancel: &CancelToken,
        emit: &mut dyn FnMut(TrainEvent),
    ) -> Result<TrainOutcome, ApiError> {
        let mut lm = load_for_training(&self.model, self.config.precision)?;
        self.run_on(&mut lm, &|| cancel.is_cancelled(), &mut |e| emit(e.clone()))
    }

    /// On the engine thread: trains adapters on `lm` (loaded already), telling `on_event`
    /// each event; `cancel` is polled before every step.
    pub(crate) fn run_on(
        self,
        lm: &mut LoadedModel,
        cancel: &dyn Fn() -> bool,
        on_event: &mut dyn FnMut(&TrainEvent),
    ) -> Result<TrainOutcome, ApiError> {
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
        } = lm;
        let prober = greedy_prober(tokenizer, chat_template.as_ref());
        let hooks = Hooks {
            prober: Some(&prober),
            on_event,
            cancel,
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

/// Loads a model as it trains in `precision`: a quantized model as it is stored (QLoRA), as
/// in mlx-lm, on every backend; float weights in the precision's type, or for `auto` as the
/// backend holds them (on a GPU, as stored).
pub(crate) fn load_for_training(
    model: &Path,
    precision: Precision,
) -> Result<LoadedModel, ApiError> {
    Ok(load(model, &precision.load_options())?)
}

/// What a few real steps measured, beside the estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Calibration {
    /// The estimate the run started with (its batch size is the one that fits).
    pub plan: MemoryEstimate,
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
        self.check_request(request)?;
        let report = prepare_data(request, &self.dataset_cache()?, &mut on_progress)?;
        let work = TrainWork::new(request, &report, PathBuf::new(), false)?;
        on_progress(&TrainProgress::Loading);
        self.engine.call(move |_| {
            let mut lm = load_for_training(&work.model, work.config.precision)?;
            let train_split = TokenCache::open(&work.train)?;
            Ok(plan(&mut lm.model, &train_split, &work.config)?)
        })
    }

    /// Trains `request` for a few steps into a scratch folder and reports the measured peak
    /// memory and speed beside the estimate. Records no run.
    pub fn calibrate_training(
        &self,
        request: &TrainRequest,
        mut on_progress: impl FnMut(&TrainProgress),
    ) -> Result<Calibration, ApiError> {
        self.check_request(request)?;
        let report = prepare_data(request, &self.dataset_cache()?, &mut on_progress)?;
        let scratch = std::env::temp_dir().join(format!("adapt-calibrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let mut work = TrainWork::new(request, &report, scratch.clone(), false)?;
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
        let outcome = self.engine.relay(
            move |_, emit| work.run(&CancelToken::default(), emit),
            |event: TrainEvent| {
                match &event {
                    TrainEvent::Started { memory, .. } => plan = Some(memory.clone()),
                    TrainEvent::Calibrated { measured: m, .. } => measured = *m,
                    TrainEvent::Report(r) => speed = r.tokens_per_second,
                    _ => {}
                }
                on_progress(&TrainProgress::Engine(event));
            },
        );
        let _ = std::fs::remove_dir_all(&scratch);
        let outcome = outcome?;
        let plan = plan.ok_or_else(|| {
            ApiError::new(
                ErrorCode::TrainCalibrate,
                "the calibration run did not start",
            )
        })?;
        Ok(Calibration {
            plan,
            measured: measured.max(outcome.peak_memory),
            steps: outcome.steps,
            seconds_per_step: outcome.seconds / outcome.steps.max(1) as f64,
            tokens_per_second: speed,
        })
    }

    /// Starts training `request` as a job. `on_progress` runs on the job's thread; its last
    /// event is [`TrainProgress::Ended`].
    pub fn start_training(
        &self,
        request: TrainRequest,
        on_progress: impl FnMut(&TrainProgress) + Send + 'static,
    ) -> Result<TrainJob, ApiError> {
        self.check_request(&request)?;
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
                ErrorCode::TrainFinished,
                format!("run {run_id} already finished; start a new run to train further"),
            ));
        }
        let config: RunConfig = serde_json::from_str(&run.config).map_err(|e| {
            ApiError::new(
                ErrorCode::TrainBadRun,
                format!("run {run_id} has no training configuration to resume with: {e}"),
            )
        })?;
        let dir = self.run_folder(run_id)?;
        if run_state(&dir)?.is_none() {
            return Err(ApiError::new(
                ErrorCode::TrainNoCheckpoint,
                format!(
                    "run {run_id} has no complete checkpoint in {}; start it again instead",
                    dir.display()
                ),
            ));
        }
        self.spawn_training(run_id, config, true, on_progress)
    }

    /// Stops run `run_id`, whichever process trains it; it writes a checkpoint first.
    pub fn stop_run(&self, run_id: i64) -> Result<(), ApiError> {
        let running = self.jobs()?.into_iter().find(|j| {
            j.run_id == Some(run_id) && matches!(j.status, JobStatus::Queued | JobStatus::Running)
        });
        match running {
            Some(job) => self.cancel_job(job.id).map(|_| ()),
            None => Err(ApiError::new(
                ErrorCode::TrainNotRunning,
                format!("run {run_id} is not training"),
            )),
        }
    }

    fn spawn_training(
        &self,
        run_id: i64,
        config: RunConfig,
        resume: bool,
        on_progress: impl FnMut(&TrainProgress) + Send + 'static,
    ) -> Result<TrainJob, ApiError> {
        let dir = self.run_folder(run_id)?;
        let this = self.for_job()?;
        let outcome: Arc<Mutex<Option<TrainOutcome>>> = Arc::default();
        let (kept, ended) = (outcome.clone(), outcome.clone());
        let on_progress = Arc::new(Mutex::new(on_progress));
        let tell = on_progress.clone();
        let params = serde_json::json!({ "run": run_id, "resume": resume }).to_string();
        let handle = self.records.job_runner()?.spawn(
            JobKind::Train,
            &params,
            Some(run_id),
            move |ctx| {
                let mut progress =
                    |p: &TrainProgress| (tell.lock().unwrap_or_else(|e| e.into_inner()))(p);
                progress(&TrainProgress::Run {
                    run_id,
                    resumed: resume,
                });
                let ended = this.train_job(ctx, run_id, config, dir, resume, &mut progress);
                record_end(ctx, run_id, &ended)?;
                *kept.lock().unwrap_or_else(|p| p.into_inner()) = ended.as_ref().ok().cloned();
                ended.map(|_| ())
            },
            move |_, status, error| {
                let end = TrainEnd {
                    run_id,
                    status,
                    outcome: take(&ended),
                    error: error.cloned(),
                };
                (on_progress.lock().unwrap_or_else(|e| e.into_inner()))(&TrainProgress::Ended(end));
            },
        )?;
        Ok(TrainJob {
            handle,
            run_id,
            outcome,
        })
    }
}

/// What a training job's thread needs of the API: the engine and where data is cached.
struct JobSide {
    engine: EngineHandle,
    dataset_cache: Result<PathBuf, ApiError>,
}

impl Adapt {
    fn for_job(&self) -> Result<JobSide, ApiError> {
        Ok(JobSide {
            engine: self.engine.handle(),
            dataset_cache: self.dataset_cache(),
        })
    }
}

impl JobSide {
    /// On the job's thread: prepares the data (refusing changed data on a resume), then has
    /// the engine thread train, recording metrics and checkpoints as they come.
    fn train_job(
        &self,
        ctx: &JobContext,
        run_id: i64,
        mut config: RunConfig,
        dir: PathBuf,
        resume: bool,
        on_progress: &mut dyn FnMut(&TrainProgress),
    ) -> Result<TrainOutcome, ApiError> {
        ctx.store().set_run_status(run_id, Status::Running, None)?;
        let req = config.request.clone();
        let report = prepare_data(&req, &self.dataset_cache.clone()?, on_progress)?;
        if resume && config.data_key.as_deref().is_some_and(|k| k != report.key) {
            return Err(ApiError::new(
                ErrorCode::TrainDataChanged,
                "the training data changed since this run started, so it cannot resume where \
                 it stopped; start a new run",
            ));
        }
        if !resume {
            config.data_key = Some(report.key.clone());
            let json = serde_json::to_string(&config).unwrap_or_default();
            ctx.store().set_run_config(run_id, &json)?;
        }
        // In a group, the other ranks train this run too (`group_train`).
        let json = serde_json::to_vec(&config).unwrap_or_default();
        self.engine.call(move |_| Ok(share_from_rank0(json)?))?;
        let work = TrainWork::new(&req, &report, dir, resume)?;
        on_progress(&TrainProgress::Loading);
        let cancel = ctx.cancel_token();
        let mut recorder = Recorder::default();
        let outcome = self.engine.relay(
            move |_, emit| work.run(&cancel, emit),
            |event: TrainEvent| {
                // A busy store only delays what other processes see.
                let _ = recorder.record(ctx, run_id, &event);
                on_progress(&TrainProgress::Engine(event));
            },
        )?;
        if let (Some(dir), false) = (&req.adapter_path, outcome.stop == TrainStop::Cancelled) {
            export_adapter(&outcome.adapter_dir, dir)?;
        }
        Ok(outcome)
    }
}

/// Writes the adapter of the folder `from` into `to` as well (mlx-lm's `--adapter-path`):
/// its two files, each written whole before it takes its name; an adapter already there is
/// never overwritten.
fn export_adapter(from: &Path, to: &Path) -> Result<(), ApiError> {
    use adapt_engine::adapters::files::{ADAPTERS_FILE, CONFIG_FILE};
    let failed = |what: &Path, e: std::io::Error| {
        ApiError::new(
            ErrorCode::ApiIo,
            format!(
                "the run finished and its adapter is in {}, but it could not be written into \
                 {}: {e}",
                from.display(),
                what.display()
            ),
        )
    };
    std::fs::create_dir_all(to).map_err(|e| failed(to, e))?;
    for name in [ADAPTERS_FILE, CONFIG_FILE] {
        let dst = to.join(name);
        if dst.exists() {
            return Err(failed(
                &dst,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "an adapter is there"),
            ));
        }
        let partial = to.join(format!(".{name}.partial"));
        std::fs::copy(from.join(name), &partial).map_err(|e| failed(&partial, e))?;
        std::fs::rename(&partial, &dst).map_err(|e| failed(&dst, e))?;
    }
    Ok(())
}

/// Reads and tokenizes a request's data into `cache` (or finds it prepared already), telling
/// `on_progress`.
pub(crate) fn prepare_data(
    req: &TrainRequest,
    cache: &Path,
    on_progress: &mut dyn FnMut(&TrainProgress),
) -> Result<PrepareReport, ApiError> {
    let text = crate::datasets::load_text_model(&req.model)?;
    let report = crate::datasets::prepare(&req.data, &req.data_options, &text, cache, &mut |p| {
        on_progress(&TrainProgress::Preparing(p))
    })?;
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

/// Records how a run ended: its status, and its adapter when it succeeded.
fn record_end(
    ctx: &JobContext,
    run_id: i64,
    ended: &Result<TrainOutcome, ApiError>,
) -> Result<(), ApiError> {
    let mut store = ctx.store();
    match ended {
        Ok(o) if o.stop == TrainStop::Cancelled => {
            store.set_run_status(run_id, Status::Cancelled, None)?;
        }
        Ok(o) => {
            store.set_run_status(run_id, Status::Succeeded, None)?;
            let name = store.run(run_id)?.name;
            store.add_adapter(&NewAdapter {
                name,
                path: o.adapter_dir.clone(),
                run_id: Some(run_id),
                base_model_id: None,
            })?;
        }
        Err(e) => {
            store.set_run_status(run_id, Status::Failed, Some(&e.message))?;
        }
    }
    Ok(())
}

impl Adapt {
    /// Where run `run_id` keeps its files (its adapter folder).
    pub(crate) fn run_folder(&self, run_id: i64) -> Result<PathBuf, ApiError> {
        Ok(self.data_dir()?.runs().join(run_id.to_string()))
    }

    /// The adapter folder of run `run_id`.
    pub fn run_dir(&self, run_id: i64) -> Result<PathBuf, ApiError> {
        let dir = self.run_folder(run_id)?;
        if !dir.join("adapter_config.json").is_file() {
            return Err(ApiError::new(
                ErrorCode::TrainNoAdapter,
                format!("run {run_id} has no adapter folder; `adapt runs list` shows the runs"),
            ));
        }
        Ok(dir)
    }

    /// An adapter given as a run id (`12`) or a folder path: a folder holding
    /// `adapter_config.json` (ours or mlx-lm's), checked before it is used.
    pub fn resolve_adapter(&self, spec: &str) -> Result<PathBuf, ApiError> {
        let dir = match spec.parse::<i64>() {
            Ok(id) if !Path::new(spec).exists() => return self.run_dir(id),
            _ => PathBuf::from(spec),
        };
        if !dir.join("adapter_config.json").is_file() {
            let what = if dir.exists() {
                "is not an adapter folder (it has no adapter_config.json)"
            } else {
                "does not exist"
            };
            return Err(ApiError::new(
                ErrorCode::TrainNoAdapter,
                format!(
                    "{} {what}; give a run id (`adapt runs list`) or a folder an adapter was \
                     saved in",
                    dir.display()
                ),
            ));
        }
        Ok(dir)
    }
}
