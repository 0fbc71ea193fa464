//! The use cases over the store and the data directory: runs and their metrics, jobs (list,
//! cancel, resumable, spawn), the models cache and the Hugging Face hub cache.
//!
//! [`Records`] is what [`Adapt`] holds: the resolved data directory, one shared store
//! connection and the [`JobRunner`]. Opening them can fail (no home directory, a damaged
//! database); that error is kept and returned by the methods that need them, so the engine
//! still works.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use adapt_paths::hub::{hub_cache, hub_models, HubModel};
use adapt_paths::{DataDir, Env};
use adapt_store::{CancelOutcome, CheckpointRecord, JobRecord, Metric, RunRecord, Status, Store};
use serde::Serialize;

use crate::jobs::{lock, JobContext, JobHandle, JobKind, JobRunner, JobTiming, SharedStore};
use crate::{Adapt, ApiError};

/// The setting that holds the models cache chosen by the person.
const MODELS_DIR_SETTING: &str = "models_dir";

/// How [`Adapt::start_with`] sets up the store and jobs.
#[derive(Debug, Clone, Default)]
pub struct AdaptConfig {
    /// The data directory; `None`: `ADAPT_DATA_DIR`, else the platform's per-user folder.
    pub data_dir: Option<PathBuf>,
    pub job_timing: JobTiming,
}

/// A run with its metrics and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RunDetails {
    pub run: RunRecord,
    pub metrics: Vec<Metric>,
    pub checkpoints: Vec<CheckpointRecord>,
    pub jobs: Vec<JobRecord>,
}

pub(crate) struct Records {
    env: Env,
    opened: Result<Opened, ApiError>,
}

struct Opened {
    data: DataDir,
    store: SharedStore,
    jobs: JobRunner,
}

impl Records {
    pub(crate) fn open(config: AdaptConfig) -> Result<Records, ApiError> {
        let env = Env::current();
        let data = match config.data_dir {
            Some(dir) => Ok(DataDir::at(dir)),
            None => DataDir::resolve(&env).map_err(ApiError::from),
        };
        let opened = data.and_then(|data| {
            let store = Arc::new(Mutex::new(Store::open(&data.database())?));
            let jobs = JobRunner::new(store.clone(), config.job_timing)?;
            Ok(Opened { data, store, jobs })
        });
        if let Ok(opened) = &opened {
            // If the database stays busy now, the next listing of jobs tries again.
            let _ = opened.jobs.interrupt_dead();
        }
        Ok(Records { env, opened })
    }

    fn get(&self) -> Result<&Opened, ApiError> {
        self.opened.as_ref().map_err(Clone::clone)
    }
}

impl Adapt {
    /// The data directory in use.
    pub fn data_dir(&self) -> Result<&DataDir, ApiError> {
        Ok(&self.records.get()?.data)
    }

    pub(crate) fn store(&self) -> Result<MutexGuard<'_, Store>, ApiError> {
        Ok(lock(&self.records.get()?.store))
    }

    fn job_runner(&self) -> Result<&JobRunner, ApiError> {
        Ok(&self.records.get()?.jobs)
    }

    /// Every training run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, ApiError> {
        Ok(self.store()?.runs()?)
    }

    /// One run with its metrics, checkpoints and jobs.
    pub fn run(&self, id: i64) -> Result<RunDetails, ApiError> {
        let store = self.store()?;
        let run = store
            .run(id)
            .map_err(|e| not_found(e, "run", id, "adapt runs list"))?;
        let jobs = store
            .jobs()?
            .into_iter()
            .filter(|j| j.run_id == Some(id))
            .collect();
        Ok(RunDetails {
            metrics: store.metrics(id, None)?,
            checkpoints: store.checkpoints(id)?,
            jobs,
            run,
        })
    }

    /// Every job, newest first, after marking those whose process died as interrupted.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, ApiError> {
        self.job_runner()?.interrupt_dead()?;
        Ok(self.store()?.jobs()?)
    }

    pub fn job(&self, id: i64) -> Result<JobRecord, ApiError> {
        self.job_runner()?.interrupt_dead()?;
        self.store()?
            .job(id)
            .map_err(|e| not_found(e, "job", id, "adapt jobs list"))
    }

    /// Jobs that were running when their process died, which can be resumed.
    pub fn resumable_jobs(&self) -> Result<Vec<JobRecord>, ApiError> {
        Ok(self
            .jobs()?
            .into_iter()
            .filter(|j| j.status == Status::Interrupted)
            .collect())
    }

    /// Stops job `id`, whichever process runs it.
    pub fn cancel_job(&self, id: i64) -> Result<CancelOutcome, ApiError> {
        self.job_runner()?
            .cancel(id)
            .map_err(|e| match e.code.as_str() {
                "store.not_found" => ApiError::new(
                    "job.not_found",
                    format!("there is no job {id}; `adapt jobs list` shows the jobs"),
                ),
                _ => e,
            })
    }

    /// Runs `work` as a job (see [`JobRunner::spawn`]); the use cases that do long work
    /// (training, downloads, dataset preparation, conversion) start theirs here.
    pub fn spawn_job(
        &self,
        kind: JobKind,
        params: &str,
        run_id: Option<i64>,
        work: impl FnOnce(&JobContext) -> Result<(), ApiError> + Send + 'static,
    ) -> Result<JobHandle, ApiError> {
        self.job_runner()?.spawn(kind, params, run_id, work)
    }

    /// The models cache: `flag`, else `ADAPT_MODELS_DIR`, else the saved setting, else
    /// `models-cache/` in the current directory, else `<data dir>/models`.
    pub fn models_dir(&self, flag: Option<&Path>) -> PathBuf {
        let env = &self.records.env;
        match self.records.get() {
            Ok(opened) => {
                let setting = lock(&opened.store)
                    .setting(MODELS_DIR_SETTING)
                    .ok()
                    .flatten()
                    .map(PathBuf::from);
                adapt_paths::models_dir(env, &opened.data, flag, setting.as_deref())
            }
            // Without a data directory: the flag, the variable, or the checkout's folder.
            Err(_) => flag
                .map(Path::to_path_buf)
                .or_else(|| env.var("ADAPT_MODELS_DIR"))
                .unwrap_or_else(|| env.cwd.join("models-cache")),
        }
    }

    /// Saves `dir` as the models cache (`None` forgets the choice).
    pub fn set_models_dir(&self, dir: Option<&Path>) -> Result<(), ApiError> {
        let mut store = self.store()?;
        match dir {
            Some(dir) => store.set_setting(MODELS_DIR_SETTING, &dir.to_string_lossy())?,
            None => {
                store.remove_setting(MODELS_DIR_SETTING)?;
            }
        }
        Ok(())
    }

    /// Where the Hugging Face hub cache is, and the models in it (read in place).
    pub fn hub_models(&self) -> (Option<PathBuf>, Vec<HubModel>) {
        let hub = hub_cache(&self.records.env);
        let models = hub.as_deref().map(hub_models).unwrap_or_default();
        (hub, models)
    }
}

fn not_found(e: adapt_store::StoreError, what: &str, id: i64, list: &str) -> ApiError {
    match e {
        adapt_store::StoreError::NotFound { .. } => ApiError::new(
            format!("{what}.not_found"),
            format!("there is no {what} {id}; `{list}` shows them"),
        ),
        e => e.into(),
    }
}
