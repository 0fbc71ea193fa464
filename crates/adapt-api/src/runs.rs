//! The use cases over the store and the data directory: runs and their metrics, jobs (list,
//! cancel, resumable, spawn), the models cache and the Hugging Face hub cache.

use std::path::{Path, PathBuf};

use adapt_paths::hub::{hub_cache, hub_models, HubModel};
use adapt_store::{
    AdapterRecord, CancelOutcome, CheckpointRecord, JobRecord, Metric, RunRecord, Status,
};
use serde::Serialize;

use crate::adapt::Adapt;
use crate::error::{ApiError, ErrorCode};
use crate::jobs::{JobContext, JobHandle, JobKind};

/// An adapter a run left, and the model it was trained on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AdapterEntry {
    #[serde(flatten)]
    pub adapter: AdapterRecord,
    /// The model (file or folder) the run trained on.
    pub base_model: Option<PathBuf>,
}

/// The setting that holds the models cache chosen by the person.
const MODELS_DIR_SETTING: &str = "models_dir";

/// A run with its metrics and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RunDetails {
    pub run: RunRecord,
    pub metrics: Vec<Metric>,
    pub checkpoints: Vec<CheckpointRecord>,
    pub jobs: Vec<JobRecord>,
}

impl Adapt {
    /// Every training run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, ApiError> {
        Ok(self.store()?.runs()?)
    }

    /// One run with its metrics, checkpoints and jobs.
    pub fn run(&self, id: i64) -> Result<RunDetails, ApiError> {
        let store = self.store()?;
        let run = store
            .run(id)
            .map_err(|e| not_found(e, ErrorCode::RunNotFound, "run", id, "adapt runs list"))?;
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

    /// The adapters training runs left (their folders still there), newest first, each with
    /// the model it was trained on.
    pub fn adapters(&self) -> Result<Vec<AdapterEntry>, ApiError> {
        let store = self.store()?;
        let mut adapters: Vec<AdapterEntry> = store
            .adapters()?
            .into_iter()
            .filter(|a| a.path.join("adapter_config.json").is_file())
            .map(|adapter| {
                let base_model = adapter
                    .run_id
                    .and_then(|id| store.run(id).ok())
                    .and_then(|run| serde_json::from_str::<serde_json::Value>(&run.config).ok())
                    .and_then(|c| c["request"]["model"].as_str().map(PathBuf::from));
                AdapterEntry {
                    adapter,
                    base_model,
                }
            })
            .collect();
        adapters.sort_by_key(|a| std::cmp::Reverse(a.adapter.id));
        Ok(adapters)
    }

    /// Every job, newest first, after marking those whose process died as interrupted.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, ApiError> {
        self.records.job_runner()?.interrupt_dead()?;
        Ok(self.store()?.jobs()?)
    }

    pub fn job(&self, id: i64) -> Result<JobRecord, ApiError> {
        self.records.job_runner()?.interrupt_dead()?;
        self.store()?
            .job(id)
            .map_err(|e| not_found(e, ErrorCode::JobNotFound, "job", id, "adapt jobs list"))
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
        self.records
            .job_runner()?
            .cancel(id)
            .map_err(|e| match e.code {
                ErrorCode::StoreNotFound => ApiError::new(
                    ErrorCode::JobNotFound,
                    format!("there is no job {id}; `adapt jobs list` shows the jobs"),
                ),
                _ => e,
            })
    }

    /// Stops every job this process runs (a shell quitting) and waits up to `wait` for them
    /// to end; training runs write a checkpoint first. Returns how many had not ended.
    pub fn stop_all_jobs(&self, wait: std::time::Duration) -> usize {
        self.records
            .job_runner()
            .map_or(0, |runner| runner.stop_all(wait))
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
        self.records
            .job_runner()?
            .spawn(kind, params, run_id, work, |_, _, _| {})
    }

    /// The models cache: `flag`, else `ADAPT_MODELS_DIR`, else the saved setting, else
    /// `models-cache/` in the current directory, else `<data dir>/models`.
    pub fn models_dir(&self, flag: Option<&Path>) -> PathBuf {
        let env = &self.records.env;
        match self.records.data_dir() {
            Ok(data) => {
                let setting = self
                    .store()
                    .ok()
                    .and_then(|s| s.setting(MODELS_DIR_SETTING).ok().flatten())
                    .map(PathBuf::from);
                adapt_paths::models_dir(env, data, flag, setting.as_deref())
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

fn not_found(
    e: adapt_store::StoreError,
    code: ErrorCode,
    what: &str,
    id: i64,
    list: &str,
) -> ApiError {
    match e {
        adapt_store::StoreError::NotFound { .. } => ApiError::new(
            code,
            format!("there is no {what} {id}; `{list}` shows them"),
        ),
        e => e.into(),
    }
}
