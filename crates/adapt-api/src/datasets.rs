//! Dataset use cases: inspect a file, prepare splits into the tokenized cache, and the
//! import benchmark. None of this touches MLX, so it runs on the caller's thread; a model's
//! tokenizer and chat template are read from its GGUF file directly.

use std::path::{Path, PathBuf};

pub use adapt_data::sample::BenchReport;
pub use adapt_data::{
    BatchConfig, Batcher, CsvOptions, DataOptions, Format, ImportOptions, InspectReport,
    LengthStats, Position, PrepareInputs, PrepareReport, Progress, RenderOptions, Split,
    SplitRatios, TextModel, TokenCache,
};

use crate::ApiError;

impl From<adapt_data::DataError> for ApiError {
    fn from(e: adapt_data::DataError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

/// The tokenizer and chat template of the model at `model` (a GGUF file or a model folder).
pub fn load_text_model(model: &Path) -> Result<TextModel, ApiError> {
    Ok(TextModel::from_model(model)?)
}

/// Where prepared datasets are kept: `ADAPT_CACHE_DIR/datasets`, else
/// `~/.cache/adapt/datasets`.
pub fn default_cache_root() -> PathBuf {
    let base = std::env::var_os("ADAPT_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/adapt")))
        .unwrap_or_else(|| PathBuf::from(".adapt-cache"));
    base.join("datasets")
}

/// Format, counts, errors, token statistics (with a model) and the first `samples` examples of
/// `path`; invalid examples are reported, not refused.
pub fn inspect(
    path: &Path,
    opts: &DataOptions,
    model: Option<&TextModel>,
    samples: usize,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<InspectReport, ApiError> {
    Ok(adapt_data::inspect(
        path,
        opts,
        model,
        samples,
        on_progress,
    )?)
}

/// Validates, renders and tokenizes `inputs` into `cache_root`, or reuses the cache of the
/// same inputs, model and options. Invalid examples are refused unless `opts.skip_invalid`.
pub fn prepare(
    inputs: &PrepareInputs,
    opts: &DataOptions,
    model: &TextModel,
    cache_root: &Path,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<PrepareReport, ApiError> {
    Ok(adapt_data::prepare(
        inputs,
        opts,
        model,
        cache_root,
        on_progress,
    )?)
}

/// Times a first and a cached preparation of a generated `rows`-row CSV in `dir`.
pub fn bench(model: &TextModel, rows: usize, dir: &Path) -> Result<BenchReport, ApiError> {
    Ok(adapt_data::sample::bench(model, rows, dir)?)
}
