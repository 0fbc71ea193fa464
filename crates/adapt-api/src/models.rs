//! The model library and downloads: list, inspect (with memory fit advice), import and delete
//! models (`adapt-library`), and pull repositories from the Hugging Face Hub (`adapt-hub`) as
//! download jobs.
//!
//! Pulls land in `<models cache>/hub/models--ORG--NAME/` (the hub cache layout); the snapshot
//! folder is what the engine loads. A pull that was killed leaves `.incomplete` files there,
//! and pulling the same repository again resumes them.

use std::path::Path;
use std::sync::{Arc, Mutex};

use adapt_hub::{HubClient, PullProgress, PullRequest, Pulled, RepoSpec};
use adapt_library::{fit, Fit, FitOptions, Library, Memory, ModelEntry};
use serde::Serialize;

use crate::jobs::{JobEvent, JobHandle, JobKind, JobStatus};
use crate::{Adapt, ApiError};

/// A model with its memory fit on this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ModelDetails {
    #[serde(flatten)]
    pub model: ModelEntry,
    pub fit: Fit,
}

/// A running pull: a download job whose end is the pulled snapshot.
pub struct PullJob {
    handle: JobHandle,
    pulled: Arc<Mutex<Option<Pulled>>>,
}

impl PullJob {
    pub fn id(&self) -> i64 {
        self.handle.id()
    }

    /// The job's events; the channel closes after [`JobEvent::Finished`].
    pub fn events(&self) -> &std::sync::mpsc::Receiver<JobEvent> {
        self.handle.events()
    }

    /// Stops the download at its next chunk; partial files are kept for the next pull.
    pub fn cancel(&self) {
        self.handle.cancel();
    }

    /// A token that stops the download (from another thread).
    pub fn cancel_token(&self) -> crate::jobs::CancelToken {
        self.handle.cancel_token()
    }

    /// Waits for the end: the pulled snapshot, or the job's error (`hub.cancelled` when it
    /// was cancelled).
    pub fn wait(self) -> Result<Pulled, ApiError> {
        let record = self.handle.wait()?;
        match record.status {
            JobStatus::Succeeded => self
                .pulled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or_else(|| ApiError::new("api.internal", "the pull ended without a result")),
            JobStatus::Cancelled => Err(ApiError::new(
                "hub.cancelled",
                adapt_hub::HubError::Cancelled.to_string(),
            )),
            _ => Err(ApiError::new(
                record.error_code.unwrap_or_else(|| "job.failed".into()),
                record
                    .error_message
                    .unwrap_or_else(|| format!("job {} ended as {}", record.id, record.status)),
            )),
        }
    }
}

impl From<adapt_hub::HubError> for ApiError {
    fn from(e: adapt_hub::HubError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl From<adapt_library::LibraryError> for ApiError {
    fn from(e: adapt_library::LibraryError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl Adapt {
    /// The library over the models cache and the Hugging Face hub cache.
    fn library(&self) -> Library {
        let hf = adapt_paths::hub::hub_cache(&adapt_paths::Env::current());
        Library::new(
            &self.models_dir(None),
            hf.as_deref(),
            adapt_engine::models::SUPPORTED_ARCHITECTURES,
        )
    }

    /// Every model: ours (pulled, imported, bundled), then those in the Hugging Face cache,
    /// each with its memory fit for chat and LoRA training (default workload).
    pub fn models(&self) -> Vec<ModelDetails> {
        let memory = Memory::current();
        let options = FitOptions::default();
        self.library()
            .list()
            .into_iter()
            .map(|model| ModelDetails {
                fit: fit(&model.description, memory, &options),
                model,
            })
            .collect()
    }

    /// One model, by name (`ORG/NAME`, a file or folder name in the models cache) or path,
    /// with its files and its memory fit for `options`.
    pub fn inspect_model(
        &self,
        name: &str,
        options: &FitOptions,
    ) -> Result<ModelDetails, ApiError> {
        let model = self.library().find(name)?;
        Ok(ModelDetails {
            fit: fit(&model.description, Memory::current(), options),
            model,
        })
    }

    /// Copies a model folder or GGUF file into the models cache.
    pub fn import_model(&self, path: &Path) -> Result<ModelEntry, ApiError> {
        Ok(self.library().import(path)?)
    }

    /// Deletes a model of ours; models in the Hugging Face cache are refused.
    pub fn remove_model(&self, name: &str) -> Result<ModelEntry, ApiError> {
        Ok(self.library().remove(name)?)
    }

    /// Starts pulling `spec` (`ORG/NAME[@REVISION]`; `file`: one file alone, e.g. a GGUF)
    /// from the Hub (`HF_ENDPOINT`, `HF_TOKEN`) into the models cache, as a download job.
    /// `on_progress` runs on the job's thread for every progress report.
    pub fn pull_model(
        &self,
        spec: &str,
        file: Option<&str>,
        mut on_progress: impl FnMut(&PullProgress) + Send + 'static,
    ) -> Result<PullJob, ApiError> {
        let request = PullRequest {
            spec: RepoSpec::parse(spec)?,
            file: file.map(str::to_string),
        };
        let params = serde_json::json!({
            "repo": request.spec.repo,
            "revision": request.spec.revision,
            "file": request.file,
        })
        .to_string();
        let cache = self.library().hub_dir();
        let pulled: Arc<Mutex<Option<Pulled>>> = Arc::default();
        let result = pulled.clone();
        let handle = self.spawn_job(JobKind::Download, &params, None, move |ctx| {
            let client = HubClient::from_env();
            let done = client.pull(
                &request,
                &cache,
                &mut |p| {
                    let message = format!("{} ({}/{})", p.file, p.file_index, p.file_count);
                    // A busy store only delays what other processes see.
                    let _ = ctx.progress(p.done, Some(p.total), &message);
                    on_progress(p);
                },
                &|| ctx.is_cancelled(),
            )?;
            *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(done);
            Ok(())
        })?;
        Ok(PullJob { handle, pulled })
    }
}
