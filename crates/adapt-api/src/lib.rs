//! The one door every shell (the `adapt` CLI now; the desktop app and the local server later)
//! goes through.
//!
//! [`Adapt::start`] spawns the engine thread, which owns everything MLX (models, arrays, KV
//! caches): MLX is not thread-safe. Callers send [`Request`]s, each carrying its own reply
//! channel, and get typed answers; generation streams [`GenerationEvent`]s and can be
//! cancelled from the caller's side. Errors cross this boundary as [`ApiError`]
//! (`{code, message}`), never as strings to match.
//!
//! It also opens the store in the per-user data directory ([`AdaptConfig`] or
//! `ADAPT_DATA_DIR` chooses it) and runs long work as [`jobs`] whose status survives a crash;
//! runs, jobs, the models cache and the Hugging Face hub cache are read through the methods
//! in `records.rs`.

pub mod chats;
mod convert;
pub use convert::Variant;
pub mod datasets;
mod engine_thread;
mod error;
pub mod jobs;
pub mod models;
mod records;
pub mod train;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use adapt_engine::chat_bench::ChatBench;
pub use adapt_engine::convert::ConvertReport;
pub use adapt_engine::models::layers::QuantSpec;
pub use adapt_engine::quantize::Target as QuantizeTarget;
pub use adapt_engine::{
    CacheKey, ChatMessage, ChatOptions, DeviceReport, GenerateParams, Generation, GenerationStats,
    ModelInfo, Overflow, SamplingParams, StopReason,
};
pub use adapt_hub::{PullProgress, Pulled, PulledFile, Stage as PullStage};
pub use adapt_library::{
    Description, Estimate, Fit, FitOptions, Format as ModelFormat, Memory, ModelEntry,
    ModelFileEntry, Shape, Source as ModelSource, Verdict,
};
pub use adapt_paths::hub::HubModel;
pub use adapt_paths::DataDir;
pub use adapt_store::{CheckpointRecord, Metric, RunRecord};
pub use chats::{CacheBudgets, ChatState, SavedChat, SavedConversation};
pub use error::ApiError;
pub use jobs::{CancelToken, JobEvent, JobHandle, JobKind, JobRecord, JobStatus, JobTiming};
pub use models::{ModelDetails, PullJob};
pub use records::{AdaptConfig, RunDetails};
pub use train::{
    Calibration, TrainConfig, TrainForm, TrainJob, TrainPlan, TrainProgress, TrainRequest,
    TrainSummary,
};

use engine_thread::Request;

/// Identifies a conversation held by the engine thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct ChatId(u64);

/// What a generation streams back while it runs.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum GenerationEvent {
    /// Prompt tokens processed so far.
    Prefill { done: usize, total: usize },
    /// New final text.
    Text(String),
}

/// Handle to a running engine. Dropping it stops the engine thread.
pub struct Adapt {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// The data directory, store and job runner; an error here only fails the methods that
    /// need them, so generation works even where the data directory cannot be written.
    records: records::Records,
    /// Conversations saved by name: the name and the store's conversation id.
    named_chats: std::sync::Mutex<std::collections::HashMap<ChatId, (String, i64)>>,
}

impl Adapt {
    /// Starts the engine thread and opens the store in the default data directory.
    pub fn start() -> Result<Adapt, ApiError> {
        Adapt::start_with(AdaptConfig::default())
    }

    /// Starts the engine thread and opens the store as `config` says; jobs whose process
    /// died are marked interrupted (see [`Adapt::resumable_jobs`]).
    pub fn start_with(config: AdaptConfig) -> Result<Adapt, ApiError> {
        let records = records::Records::open(config)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("adapt-engine".into())
            .spawn(move || engine_thread::run(rx))
            .map_err(|e| ApiError::new("api.thread", format!("cannot start the engine: {e}")))?;
        let adapt = Adapt {
            requests: Some(tx),
            thread: Some(thread),
            records,
            named_chats: Default::default(),
        };
        adapt.apply_memory_budget(adapt.cache_budgets().memory)?;
        Ok(adapt)
    }

    /// Backend, memory and MLX version.
    pub fn device(&self) -> Result<DeviceReport, ApiError> {
        self.call(|reply| Request::Device { reply })
    }

    /// Loads the model at `path`, replacing any loaded one (and its conversations).
    pub fn load_model(&self, path: &Path) -> Result<ModelInfo, ApiError> {
        self.load_model_with_adapter(path, None)
    }

    /// Loads the model at `path` with the adapter folder `adapter` (ours or mlx-lm's)
    /// attached, replacing any loaded model.
    pub fn load_model_with_adapter(
        &self,
        path: &Path,
        adapter: Option<&Path>,
    ) -> Result<ModelInfo, ApiError> {
        let path = path.to_path_buf();
        let adapter = adapter.map(Path::to_path_buf);
        self.call(|reply| Request::LoadModel {
            path,
            adapter,
            reply,
        })
    }

    /// Generates a reply to `prompt`: rendered with the model's chat template unless `raw`.
    pub fn generate(
        &self,
        prompt: &str,
        raw: bool,
        params: &GenerateParams,
        on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<Generation, ApiError> {
        let prompt = prompt.to_string();
        let params = params.clone();
        self.stream(
            |events, cancel, reply| Request::Generate {
                prompt,
                raw,
                params,
                events,
                cancel,
                reply,
            },
            on_event,
        )
    }

    /// Times prefill of `prompt_tokens` tokens and decoding of `generate_tokens` tokens with
    /// the loaded model, `runs` times.
    pub fn bench(
        &self,
        prompt_tokens: usize,
        generate_tokens: usize,
        runs: usize,
    ) -> Result<Vec<GenerationStats>, ApiError> {
        self.call(|reply| Request::Bench {
            prompt_tokens,
            generate_tokens,
            runs,
            reply,
        })
    }

    /// With a conversation history of `history_tokens` tokens: time to first token of a cold
    /// turn and of a warm one, and saving and reopening the conversation with its cache (kept
    /// in `kv_bits` bits when given).
    pub fn bench_chat(
        &self,
        history_tokens: usize,
        kv_bits: Option<i32>,
    ) -> Result<ChatBench, ApiError> {
        let dir = std::env::temp_dir().join(format!("adapt-chat-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| {
            ApiError::new("api.io", format!("cannot create {}: {e}", dir.display()))
        })?;
        let result = self.call(|reply| Request::BenchChat {
            history_tokens,
            kv_bits,
            dir: dir.clone(),
            reply,
        });
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    pub(crate) fn sender(&self) -> Result<&Sender<Request>, ApiError> {
        self.requests.as_ref().ok_or_else(ApiError::engine_gone)
    }

    pub(crate) fn call<T>(
        &self,
        request: impl FnOnce(Sender<Result<T, ApiError>>) -> Request,
    ) -> Result<T, ApiError> {
        let (reply, answer) = mpsc::channel();
        self.sender()?
            .send(request(reply))
            .map_err(|_| ApiError::engine_gone())?;
        answer.recv().map_err(|_| ApiError::engine_gone())?
    }

    pub(crate) fn stream<T>(
        &self,
        request: impl FnOnce(
            Sender<GenerationEvent>,
            Arc<AtomicBool>,
            Sender<Result<T, ApiError>>,
        ) -> Request,
        mut on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<T, ApiError> {
        let (events_tx, events): (Sender<GenerationEvent>, Receiver<GenerationEvent>) =
            mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let (reply, answer) = mpsc::channel();
        self.sender()?
            .send(request(events_tx, cancel.clone(), reply))
            .map_err(|_| ApiError::engine_gone())?;
        // The engine drops its event sender when it is done, which ends this loop.
        for event in events {
            if !on_event(event) {
                cancel.store(true, Ordering::Relaxed);
            }
        }
        answer.recv().map_err(|_| ApiError::engine_gone())?
    }
}

impl Drop for Adapt {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
