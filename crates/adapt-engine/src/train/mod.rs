//! Fine-tuning adapters ([`crate::adapters`]) on a model.
//!
//! [`config`] holds the settings in mlx-lm's vocabulary (plus Adapt's own) and validates
//! them field by field; [`schedule`] turns a spelled-out schedule or an intent into a rate per
//! step; [`memory`] estimates a step's peak memory, fits the batch size and plans a run;
//! [`session`] is one run in progress — start or resume, `step`, `evaluate`, `checkpoint`,
//! `finish` — over [`loss`] and [`optimizer`]; [`trainer`] steps a session to the end and
//! tells its [`events`]; [`checkpoint`] and [`files`] are what a run leaves on disk;
//! [`probe`] answers probe prompts with the adapter as it is; [`bench`] measures one setting
//! (warm-up, timed steps, validation loss) for `adapt bench train`.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub(crate) mod data_parallel;
pub mod events;
pub mod files;
pub mod loss;
pub mod memory;
pub mod microbatch;
pub mod optimizer;
pub(crate) mod prefetch;
pub mod probe;
pub mod profile;
mod resize;
pub mod schedule;
pub mod session;
pub mod trainer;

pub use crate::adapters::{AdapterConfig, FineTuneType, LoraParameters};
pub use bench::{bench_setting, SettingFigures};
pub use config::{FieldProblem, OptimizerKind, Precision, TrainConfig, MIN_SEQ_LENGTH};
pub use events::{ProbeAnswer, RankThroughput, TrainEvent, TrainOutcome, TrainReport, TrainStop};
pub use files::{run_state, RunFiles};
pub use memory::{plan, MemoryEstimate, TrainPlan};
pub use microbatch::MicroBatch;
pub use probe::{greedy_prober, Prober};
pub use profile::{MemoryLeak, MemoryProfile, MemorySample, MemorySuggestion, Profiler};
pub use resize::{BatchResize, ResizeReason};
pub use schedule::{LrSchedule, ScheduleIntent};
pub use session::{Evaluation, Session, StepResult, TrainData};
pub use trainer::{train, Hooks};
