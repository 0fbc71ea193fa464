//! The model library and downloads: list, inspect (with memory fit advice), import and delete
//! models (`adapt-library`), and pull repositories from the Hugging Face Hub (`adapt-hub`) as
//! download jobs.
//!
//! Pulls land in `<models cache>/hub/models--ORG--NAME/` (the hub cache layout); the snapshot
//! folder is what the engine loads. A pull that was killed leaves `.incomplete` files there,
//! and pulling the same repository again resumes them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use adapt_hub::{HubClient, PullProgress, PullRequest, Pulled, RepoSpec};
use adapt_library::{
    describe, fit, Description, Fit, FitOptions, Library, Memory, ModelEntry, Owned, RemovalPlan,
};
use serde::Serialize;

use crate::adapt::Adapt;
use crate::error::{ApiError, ErrorCode};
use crate::jobs::{JobContext, JobEvent, JobHandle, JobKind, JobStatus};
use crate::train_form::supported;

/// A model with its memory fit on this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ModelDetails {
    #[serde(flatten)]
    pub model: ModelEntry,
    pub fit: Fit,
}

/// What a pull streams: progress per file, then how it ended (its last event).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum PullEvent {
    Progress(PullProgress),
    Ended(PullEnd),
}

/// How a pull ended: the pulled snapshot, or why not (a cancelled pull keeps its partial
/// files for the next pull of the same model).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PullEnd {
    pub job: i64,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: JobStatus,
    pub pulled: Option<Pulled>,
    pub error: Option<ApiError>,
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
                .ok_or_else(|| {
                    ApiError::new(ErrorCode::ApiInternal, "the pull ended without a result")
                }),
            JobStatus::Cancelled => Err(ApiError::new(
                ErrorCode::HubCancelled,
                adapt_hub::HubError::Cancelled.to_string(),
            )),
            _ => Err(ApiError::coded(
                record.error_code.as_deref().unwrap_or("job.failed"),
                record
                    .error_message
                    .unwrap_or_else(|| format!("job {} ended as {}", record.id, record.status)),
            )),
        }
    }
}

impl Adapt {
    /// The library over the models cache and the Hugging Face hub cache.
    fn library(&self) -> Library {
        let hf = adapt_paths::hub::hub_cache(&adapt_paths::Env::current());
        Library::new(&self.models_dir(None), hf.as_deref(), supported())
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

    /// Copies a model folder or GGUF file into the models cache, and records it with the
    /// files it wrote.
    pub fn import_model(&self, path: &Path) -> Result<ModelEntry, ApiError> {
        let entry = self.library().import(path)?;
        record_model(
            &mut *self.store()?,
            &entry.name,
            &entry.path,
            Some(&entry.description),
            "imported",
        )?;
        Ok(entry)
    }

    /// What deleting the model `name` (a name or path) would remove: the files Adapt wrote
    /// for it when it imported, pulled or converted it, with their bytes, and the files that
    /// would stay; or why it is refused (the Hugging Face cache, a path outside the models
    /// cache, a file the person put there, part of a model). Nothing is removed.
    pub fn removal_plan(&self, name: &str) -> Result<RemovalPlan, ApiError> {
        let owned = self.owned_models()?;
        Ok(self.library().removal_plan(name, &owned)?)
    }

    /// Deletes the model `name` as its [`Adapt::removal_plan`] said, when `confirmation` is
    /// that plan's and the files have not changed since; then forgets its record. Returns what
    /// was removed.
    pub fn remove_model(&self, name: &str, confirmation: &str) -> Result<RemovalPlan, ApiError> {
        let owned = self.owned_models()?;
        let plan = self.library().remove_planned(name, &owned, confirmation)?;
        let mut store = self.store()?;
        for record in store.models()? {
            if record.path == plan.root {
                store.remove_model(record.id)?;
            }
        }
        Ok(plan)
    }

    /// The models Adapt recorded putting in the library, with the files it wrote.
    fn owned_models(&self) -> Result<Vec<Owned>, ApiError> {
        Ok(self
            .store()?
            .models()?
            .into_iter()
            .map(|r| Owned {
                name: r.name,
                root: r.path,
                origin: r.origin,
                files: r.files,
            })
            .collect())
    }

    /// Starts pulling `spec` (`ORG/NAME[@REVISION]`; `file`: one file alone, e.g. a GGUF)
    /// from the Hub (`HF_ENDPOINT`, `HF_TOKEN`) into the models cache, as a download job.
    /// `on_event` runs on the job's thread for every progress report, and last for its end.
    pub fn pull_model(
        &self,
        spec: &str,
        file: Option<&str>,
        on_event: impl FnMut(&PullEvent) + Send + 'static,
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
        let (result, ended) = (pulled.clone(), pulled.clone());
        let on_event = Arc::new(Mutex::new(on_event));
        let on_end = on_event.clone();
        let tell = move |e: &PullEvent| (on_event.lock().unwrap_or_else(|p| p.into_inner()))(e);
        let work = move |ctx: &JobContext| {
            let client = HubClient::from_env();
            let done = client.pull(
                &request,
                &cache,
                &mut |p| {
                    let message = format!("{} ({}/{})", p.file, p.file_index, p.file_count);
                    // A busy store only delays what other processes see.
                    let _ = ctx.progress(p.done, Some(p.total), &message);
                    tell(&PullEvent::Progress(p.clone()));
                },
                &|| ctx.is_cancelled(),
            )?;
            // The repository's folder in the hub layout holds every file the pull wrote.
            let repo = done.snapshot.parent().and_then(Path::parent);
            if let Some(repo) = repo {
                // What it holds: the one file pulled, else the snapshot folder.
                let model = match &request.file {
                    Some(file) => done.snapshot.join(file),
                    None => done.snapshot.clone(),
                };
                let d = describe(&model, &supported()).ok();
                record_model(
                    &mut ctx.store(),
                    &request.spec.repo,
                    repo,
                    d.as_ref(),
                    "pulled",
                )?;
            }
            *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(done);
            Ok(())
        };
        let handle = self.records.job_runner()?.spawn(
            JobKind::Download,
            &params,
            None,
            work,
            move |job, status, error| {
                let end = PullEnd {
                    job,
                    status,
                    pulled: ended.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                    error: error.cloned(),
                };
                (on_end.lock().unwrap_or_else(|p| p.into_inner()))(&PullEvent::Ended(end));
            },
        )?;
        Ok(PullJob { handle, pulled })
    }
}

/// `path` when it is a model of a kind Adapt reads: an existing `.gguf` file or a folder
/// holding `config.json`; checked before the path is used (paths may come from a drop on the
/// app's window).
pub fn model_path(path: &Path) -> Result<PathBuf, ApiError> {
    let meta = std::fs::metadata(path).map_err(|_| {
        ApiError::new(
            ErrorCode::ModelNotFound,
            format!("{}: no such model file or folder", path.display()),
        )
    })?;
    let is_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    let is_model = if meta.is_dir() {
        path.join("config.json").is_file()
    } else {
        meta.is_file() && is_gguf
    };
    if !is_model {
        return Err(ApiError::new(
            ErrorCode::LibraryNotAModel,
            format!(
                "{} is not a model: Adapt reads GGUF files (.gguf) and model folders holding \
                 config.json and safetensors weights",
                path.display()
            ),
        ));
    }
    Ok(path.to_path_buf())
}

/// A model file found on disk, described from its header only (nothing is loaded).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// Architecture from the header, or why the header could not be read.
    pub architecture: Result<String, String>,
}

/// The `.gguf` files in `dir` (not recursive), sorted by name.
pub fn find_models(dir: &Path) -> Vec<ModelFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<ModelFile> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .map(|path| {
            let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            let architecture = adapt_gguf::GgufFile::open(&path)
                .map(|g| g.architecture().unwrap_or("unknown").to_string())
                .map_err(|e| e.to_string());
            ModelFile {
                path,
                bytes,
                architecture,
            }
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// Records a model Adapt put into the library at `root` (a file, or a folder whose every file
/// Adapt wrote) as `origin`, with those files; `description` is what its headers say, when
/// they could be read (a pull is recorded either way, so that it can be deleted).
pub(crate) fn record_model(
    store: &mut adapt_store::Store,
    name: &str,
    root: &Path,
    description: Option<&Description>,
    origin: &str,
) -> Result<(), ApiError> {
    let files = if root.is_dir() {
        files_under(root, root)
    } else {
        vec![".".to_string()]
    };
    store.add_model(&adapt_store::NewModel {
        name: name.to_string(),
        path: root.to_path_buf(),
        format: description.map_or_else(
            || "unknown".into(),
            |d| format!("{:?}", d.format).to_lowercase(),
        ),
        architecture: description.and_then(|d| d.architecture.clone()),
        bytes: description.map_or(0, |d| d.bytes),
        origin: origin.into(),
        files,
    })?;
    Ok(())
}

/// The files under `dir` (links not followed), relative to `root`, sorted.
fn files_under(root: &Path, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(root, &path)),
            Ok(_) => out.extend(
                path.strip_prefix(root)
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned()),
            ),
            Err(_) => {}
        }
    }
    out.sort();
    out
}
