//! The one door every shell (the `adapt` CLI, the desktop app, the local server) goes through.
//!
//! [`Adapt`] (`adapt.rs`) starts the engine thread (`engine_thread.rs`), which owns everything
//! MLX (models, arrays, KV caches: MLX is not thread-safe) and runs jobs — closures over its
//! state — one at a time; each area module keeps its engine-side function beside its public
//! method: conversations (`chats.rs`, `saved_chats.rs`), training (`train_form.rs`: the one
//! request contract, presets and validation; `train.rs`: runs as jobs; `train_record.rs`),
//! conversion (`convert.rs`), benchmarks (`bench.rs`), serving (`serve.rs`: requests by model
//! name with prompt-cache reuse, `serve_prompt.rs`: messages, tools and tool calls,
//! `prompt_files.rs`: the prompt cache on disk, `server_settings.rs`), sweeps (`sweeps.rs`:
//! trials on one loaded model, judged by successive halving, resumable; `sweep_form.rs`: a
//! sweep as the app's form gives it). Generation streams
//! [`GenerationEvent`]s and can be stopped from the caller's side. Errors cross this boundary
//! as [`ApiError`] (`{code, message, fields}`, the code an [`ErrorCode`]), never as strings to
//! match.
//!
//! It also opens the store in the per-user data directory ([`AdaptConfig`] or
//! `ADAPT_DATA_DIR` chooses it, `records.rs`) and runs long work as [`jobs`] whose status
//! survives a crash and whose streams end with how they ended; runs, jobs, the models cache
//! and the Hugging Face hub cache are read through `runs.rs`, the model library and downloads
//! through `models.rs`, datasets through [`datasets`].

mod adapt;
mod bench;
mod bench_reference;
pub mod bench_train;
mod budgets;
mod chats;
mod convert;
pub mod datasets;
mod engine_thread;
mod error;
mod group_plan;
mod group_train;
pub mod jobs;
pub mod launch;
pub mod machines;
pub mod models;
mod prompt_files;
mod records;
mod restart;
mod runs;
mod saved_chats;
mod serve;
mod serve_prompt;
mod server_settings;
mod sweep_form;
mod sweeps;
mod train;
mod train_form;
mod train_record;

pub use adapt::{Adapt, DEVICE_ENV};
pub use adapt_engine::chat_bench::ChatBench;
pub use adapt_engine::convert::ConvertReport;
pub use adapt_engine::distributed::DistBackend;
pub use adapt_engine::isolate::{
    Condition as IsolationCondition, ConditionFigures, IsolationOptions, IsolationReport,
};
pub use adapt_engine::models::layers::QuantSpec;
pub use adapt_engine::quantize::Target as QuantizeTarget;
pub use adapt_engine::train::{
    AdapterConfig, BatchResize, FieldProblem, FineTuneType, LoraParameters, LrSchedule,
    MemoryEstimate, MemoryLeak, MemoryProfile, MemorySample, MemorySuggestion, OptimizerKind,
    Precision, ProbeAnswer, RankThroughput, ResizeReason, ScheduleIntent, TrainConfig, TrainEvent,
    TrainOutcome, TrainPlan, TrainReport, TrainStop,
};
pub use adapt_engine::{
    Backend, CacheKey, ChatMessage, ChatOptions, DeviceChoice, DevicePreference, DeviceReport,
    GenerateParams, Generation, GenerationStats, ModelInfo, Overflow, SamplingParams, StopReason,
};
pub use adapt_engine::{Routing, TopicChoice, TopicSettings, TopicSimilarity};
pub use adapt_hub::{PullProgress, Pulled, PulledFile, Stage as PullStage};
pub use adapt_library::{
    Description, Estimate, Fit, FitOptions, Format as ModelFormat, Memory, ModelEntry,
    ModelFileEntry, PlannedFile, RemovalPlan, Shape, Source as ModelSource, Verdict,
};
pub use adapt_paths::hub::HubModel;
pub use adapt_paths::DataDir;
pub use adapt_store::{AdapterRecord, CheckpointRecord, DatasetRecord, Metric, RunRecord};
pub use adapt_store::{SweepRecord, TrialRecord, TrialState};
pub use adapt_sweep::{Domain, Space, SweepSpec};
pub use budgets::{CacheBudgets, DEFAULT_DISK_BUDGET, DEFAULT_MEMORY_BUDGET};
pub use chats::{ChatState, TopicInfo, TopicsView};
pub use convert::{FuseReport, Variant};
pub use engine_thread::{ChatId, GenerationEvent};
pub use error::{ApiError, ErrorCode};
pub use group_plan::{read_request, GroupEstimate, GroupStart};
pub use jobs::{CancelToken, JobEvent, JobHandle, JobKind, JobRecord, JobStatus, JobTiming};
pub use models::{find_models, ModelDetails, ModelFile, PullEnd, PullEvent, PullJob};
pub use prompt_files::{RestoredPrompts, SavedPrompts};
pub use records::AdaptConfig;
pub use runs::{AdapterEntry, RunDetails};
pub use saved_chats::{SavedChat, SavedConversation};
pub use serve::{
    unix_now, Completion, CompletionEvent, CompletionRequest, Finish, PromptInput, Served,
    ServedModel, ServedRequest, TokenText,
};
pub use serve_prompt::{ToolCall, ToolFormat};
pub use server_settings::ServerSettings;
pub use sweep_form::SweepForm;
pub use sweeps::{
    read_sweep_file, read_sweep_spec, SweepDetails, SweepEnd, SweepJob, SweepProgress,
    SweepRequest, TrialCurve,
};
pub use train::{Calibration, TrainEnd, TrainJob, TrainProgress, TrainSummary};
pub use train_form::{
    read_config_file, training_presets, TrainCheck, TrainForm, TrainPreset, TrainRequest,
};
