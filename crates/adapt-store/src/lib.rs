//! Adapt's SQLite store: the only crate that speaks SQL.
//!
//! [`Store::open`] opens (creating if needed) one database file, sets the connection up for
//! safe concurrent use (WAL, foreign keys, a busy timeout, `synchronous=FULL`) and brings its
//! schema up to date with the ordered [`migrations`]. Each table lives in its own module with
//! its migration SQL beside it and adds typed methods to [`Store`]:
//!
//! | module            | table(s)        | records                                   |
//! |-------------------|-----------------|-------------------------------------------|
//! | [`models`]        | `models`        | [`ModelRecord`], [`NewModel`]             |
//! | [`datasets`]      | `datasets`      | [`DatasetRecord`], [`NewDataset`]         |
//! | [`runs`]          | `runs`          | [`RunRecord`], [`NewRun`], [`Status`]     |
//! | [`metrics`]       | `run_metrics`   | [`Metric`]                                |
//! | [`checkpoints`]   | `checkpoints`   | [`CheckpointRecord`]                      |
//! | [`adapters`]      | `adapters`      | [`AdapterRecord`], [`NewAdapter`]         |
//! | [`conversations`] | `conversations` | [`ConversationRecord`]                    |
//! | [`messages`]      | `messages`      | [`MessageRecord`]                         |
//! | [`kv_caches`]     | `kv_caches`     | [`KvCacheRecord`], [`CacheKey`]           |
//! | [`jobs`]          | `jobs`          | [`JobRecord`], [`CancelOutcome`]          |
//! | [`settings`]      | `settings`      | plain key → value strings                 |
//! | [`sweeps`]        | `sweeps`, `sweep_trials` | [`SweepRecord`], [`TrialRecord`] |
//!
//! A [`Store`] is one connection: use it from one thread at a time (share it behind a mutex,
//! or open one per thread — WAL lets readers and a writer work at the same time). Times are
//! milliseconds since the Unix epoch.

pub mod adapters;
pub mod checkpoints;
pub mod conversations;
pub mod datasets;
mod error;
pub mod jobs;
pub mod kv_caches;
pub mod messages;
pub mod metrics;
pub mod migrations;
pub mod models;
pub mod runs;
pub mod settings;
mod store;
pub mod sweeps;

pub use adapters::{AdapterRecord, NewAdapter};
pub use checkpoints::CheckpointRecord;
pub use conversations::ConversationRecord;
pub use datasets::{DatasetRecord, NewDataset};
pub use error::{Result, StoreError};
pub use jobs::{CancelOutcome, JobRecord, NewJob};
pub use kv_caches::{CacheKey, KvCacheRecord};
pub use messages::MessageRecord;
pub use metrics::Metric;
pub use models::{ModelRecord, NewModel};
pub use runs::{NewRun, RunRecord, Status};
pub use store::{now_ms, Store};
pub use sweeps::{SweepRecord, TrialRecord, TrialState};
