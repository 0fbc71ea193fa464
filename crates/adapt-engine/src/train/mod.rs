//! Fine-tuning: LoRA and DoRA adapters over dense or quantized layers ([`adapters`]), the
//! training loop ([`trainer`]), its settings in mlx-lm's vocabulary ([`config`]), learning-rate
//! schedules ([`schedule`]), checkpoints that resume exactly ([`checkpoint`]) and the memory
//! estimate that picks a batch size ([`memory`]).

pub mod adapters;
pub mod checkpoint;
pub mod config;
pub mod fuse;
pub mod memory;
pub mod schedule;
pub mod trainer;

pub use config::{
    AdapterConfig, FineTuneType, LoraParameters, LrSchedule, OptimizerKind, TrainConfig,
};
pub use trainer::{
    greedy_prober, plan, train, Hooks, ProbeAnswer, Prober, RunFiles, TrainData, TrainEvent,
    TrainOutcome, TrainPlan, TrainReport, TrainStop,
};
