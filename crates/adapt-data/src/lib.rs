//! Datasets for Adapt, without MLX: a CSV / TSV or JSONL file a person drops on the app
//! becomes validated examples, rendered with the model's chat template, tokenized with a loss
//! mask over every assistant turn (or the completion), cached on disk, and cut into padded,
//! length-bucketed batches for training.
//!
//! ```no_run
//! use std::path::Path;
//! use adapt_data::{inspect, prepare, DataOptions, PrepareInputs, SplitRatios, TextModel};
//!
//! let model = TextModel::from_gguf(Path::new("model.gguf"))?;
//! let opts = DataOptions::default();
//! let report = inspect(Path::new("chats.jsonl"), &opts, Some(&model), 3, &mut |_| {})?;
//! println!("{} valid, {} invalid", report.file.examples, report.file.invalid);
//! let inputs = PrepareInputs {
//!     train: "chats.jsonl".into(),
//!     valid: None,
//!     test: None,
//!     ratios: SplitRatios::default(),
//! };
//! let prepared = prepare(&inputs, &opts, &model, Path::new("cache"), &mut |_| {})?;
//! # Ok::<(), adapt_data::DataError>(())
//! ```
//!
//! Pipeline: [`import`] (streaming readers, format detection) → [`example`] (validation) →
//! [`render`] (chat template, masks, tokens) → [`pipeline`] (scan, inspect) → [`prepare`]
//! (splits, [`cache`]) → [`batch`].

pub mod batch;
pub mod cache;
pub mod csvmap;
mod error;
pub mod example;
pub mod import;
pub mod isolation;
pub mod pipeline;
pub mod prepare;
pub mod render;
mod row;
pub mod sample;
pub mod split;
pub mod stats;

pub use batch::{Batch, BatchConfig, Batcher, Position};
pub use cache::TokenCache;
pub use csvmap::{CsvMapping, CsvOptions};
pub use error::{At, DataError, Warning};
pub use example::{Example, Format, Keys};
pub use import::{FileKind, ImportOptions, Importer};
pub use pipeline::{inspect, scan, DataOptions, FileReport, InspectReport, Progress, Sample};
pub use prepare::{prepare, PrepareInputs, PrepareReport, SplitSummary};
pub use render::{RenderOptions, Segment, TextModel, Tokenized};
pub use row::Row;
pub use split::{Split, SplitRatios};
pub use stats::LengthStats;
