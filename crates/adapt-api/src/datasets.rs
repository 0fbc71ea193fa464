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

use crate::adapt::Adapt;
use crate::error::{ApiError, ErrorCode};
pub use adapt_store::DatasetRecord;

/// The tokenizer and chat template of the model at `model` (a GGUF file or a model folder).
pub fn load_text_model(model: &Path) -> Result<TextModel, ApiError> {
    Ok(TextModel::from_model(model)?)
}

/// `path` when it is a dataset file Adapt reads: an existing `.csv`, `.tsv` or `.jsonl` file
/// (the kinds [`adapt_data::import::file_kind`] accepts, so every shell agrees); else the
/// error that says what Adapt reads.
pub fn dataset_file(path: &Path) -> Result<PathBuf, ApiError> {
    adapt_data::import::file_kind(path)?;
    std::fs::metadata(path).map_err(|source| adapt_data::DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(path.to_path_buf())
}

/// Where prepared datasets are kept (see `adapt_paths::dataset_cache`).
pub fn default_cache_root() -> Result<PathBuf, ApiError> {
    Ok(adapt_paths::dataset_cache(&adapt_paths::Env::current())?)
}

impl Adapt {
    /// Records the file `report` describes among the datasets (the most recently seen first).
    pub fn record_dataset(&self, report: &InspectReport) -> Result<(), ApiError> {
        let path = &report.file.path;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let format = report
            .file
            .format
            .map(|f| format!("{f:?}").to_lowercase())
            .unwrap_or_else(|| format!("{:?}", report.file.kind).to_lowercase());
        self.store()?.add_dataset(&adapt_store::NewDataset {
            name,
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()),
            format,
            n_examples: Some(report.file.examples),
        })?;
        Ok(())
    }

    /// The datasets seen (inspected or trained on), the most recent first.
    pub fn datasets(&self) -> Result<Vec<DatasetRecord>, ApiError> {
        Ok(self.store()?.datasets()?)
    }
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

/// Longest text of one line [`lines_around`] returns, in characters.
const SHOWN_LINE_CHARS: usize = 4000;

/// Lines `line - context ..= line + context` of the text file `path` (1-based numbers), each
/// cut to a few thousand characters: what the app shows for an error at `line`.
pub fn lines_around(path: &Path, line: u64, context: u64) -> Result<Vec<(u64, String)>, ApiError> {
    use std::io::{BufRead, BufReader};
    let path = dataset_file(path)?;
    let path = path.as_path();
    let read_error = |e: std::io::Error| {
        ApiError::new(
            ErrorCode::DataIo,
            format!("{}: cannot read: {e}", path.display()),
        )
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let first = line.saturating_sub(context).max(1);
    let mut shown = Vec::new();
    let mut bytes = Vec::new();
    let mut reader = BufReader::new(file);
    for n in 1..=line + context {
        bytes.clear();
        if reader.read_until(b'\n', &mut bytes).map_err(read_error)? == 0 {
            break;
        }
        if n >= first {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim_end_matches(['\n', '\r']);
            let mut cut: String = text.chars().take(SHOWN_LINE_CHARS).collect();
            if cut.len() < text.len() {
                cut.push('…');
            }
            shown.push((n, cut));
        }
    }
    if shown.last().is_none_or(|(n, _)| *n < line) {
        return Err(ApiError::new(
            ErrorCode::DataNoLine,
            format!("{} has no line {line}", path.display()),
        ));
    }
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_around_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, "a\r\nb\n{\"x\": 1}\nd").unwrap();
        let shown = lines_around(&path, 3, 1).unwrap();
        assert_eq!(
            shown,
            vec![(2, "b".into()), (3, "{\"x\": 1}".into()), (4, "d".into())]
        );
        assert_eq!(lines_around(&path, 1, 1).unwrap()[0], (1, "a".into()));
        assert_eq!(lines_around(&path, 9, 1).unwrap_err().code, "data.no_line");
        std::fs::write(&path, "é".repeat(5000)).unwrap();
        let long = &lines_around(&path, 1, 0).unwrap()[0].1;
        assert_eq!(long.chars().count(), SHOWN_LINE_CHARS + 1);
    }
}
