//! Scanning a file: import, validate, tokenize (in parallel, in order), count errors and
//! duplicates; and `inspect`, the report a person sees when they drop a file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::csvmap::CsvMapping;
use crate::error::{At, DataError, Warning};
use crate::example::{Example, Format};
use crate::import::{FileKind, ImportOptions, Importer, Row};
use crate::render::{RenderOptions, TextModel, Tokenized};
use crate::stats::{LengthCollector, LengthStats};

/// Rows tokenized together on the worker threads.
const CHUNK: usize = 2048;

/// Everything that decides how files become examples and tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataOptions {
    /// How files are read.
    pub import: ImportOptions,
    /// How examples are rendered and masked.
    pub render: RenderOptions,
    /// Skip invalid examples (and report them) instead of refusing the file.
    pub skip_invalid: bool,
    /// How many errors and warnings a report lists.
    pub max_errors: usize,
    /// Length limit for statistics (and, later, truncation).
    pub max_seq_length: u32,
}

impl Default for DataOptions {
    fn default() -> DataOptions {
        DataOptions {
            import: ImportOptions::default(),
            render: RenderOptions::default(),
            skip_invalid: false,
            max_errors: 10,
            max_seq_length: 2048,
        }
    }
}

/// A reported error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorEntry {
    /// Stable code.
    pub code: String,
    /// Message naming file, line and field.
    pub message: String,
    /// 1-based line where the example starts, when the problem is at one.
    #[serde(default)]
    pub line: Option<u64>,
}

impl From<&DataError> for ErrorEntry {
    fn from(e: &DataError) -> ErrorEntry {
        ErrorEntry {
            code: e.code().to_string(),
            message: e.to_string(),
            line: e.at().map(|at| at.line).filter(|&l| l > 0),
        }
    }
}

/// What scanning one file found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// JSONL or CSV.
    pub kind: FileKind,
    /// The examples' format (unknown if no line was valid).
    pub format: Option<Format>,
    /// The CSV column mapping, for CSV.
    pub csv: Option<CsvMapping>,
    /// Valid examples.
    pub examples: u64,
    /// Invalid examples.
    pub invalid: u64,
    /// The first `max_errors` errors.
    pub errors: Vec<ErrorEntry>,
    /// Examples identical to an earlier one (kept, with a warning).
    pub duplicates: u64,
    /// The first `max_errors` warnings.
    pub warnings: Vec<Warning>,
}

/// Progress of a long operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Progress {
    /// Bytes read so far.
    pub bytes: u64,
    /// Bytes in all.
    pub total_bytes: u64,
    /// Examples read so far.
    pub examples: u64,
}

/// Reads `path`, validating and (with a model) tokenizing each example, and calls `each` with
/// every valid one in file order. Problems with single examples are counted and listed; a
/// problem with the whole file is returned at once. Does not refuse invalid examples: see
/// [`FileReport::refuse_invalid`].
pub fn scan(
    path: &Path,
    opts: &DataOptions,
    model: Option<&TextModel>,
    mut each: impl FnMut(&Row, Option<&Tokenized>) -> Result<(), DataError>,
    progress: &mut dyn FnMut(Progress),
) -> Result<FileReport, DataError> {
    let total_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut importer = Importer::open(path, &opts.import)?;
    let mut report = FileReport {
        path: path.to_path_buf(),
        kind: importer.kind(),
        format: importer.format(),
        csv: importer.csv_mapping().cloned(),
        examples: 0,
        invalid: 0,
        errors: Vec::new(),
        duplicates: 0,
        warnings: Vec::new(),
    };
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut chunk: Vec<Result<Row, DataError>> = Vec::with_capacity(CHUNK);
    loop {
        importer.next_chunk(CHUNK, &mut chunk);
        if chunk.is_empty() {
            break;
        }
        let tokenized: Vec<Option<Result<Tokenized, DataError>>> = match model {
            Some(m) => chunk
                .par_iter()
                .map(|r| {
                    r.as_ref().ok().map(|row| {
                        let at = At::new(path, row.line);
                        m.tokenize(&row.example, &opts.render, &at)
                    })
                })
                .collect(),
            None => chunk.iter().map(|_| None).collect(),
        };
        for (item, tok) in chunk.drain(..).zip(tokenized) {
            let outcome = match (item, tok) {
                (Err(e), _) => Err(e),
                (Ok(_), Some(Err(e))) => Err(e),
                (Ok(row), tok) => Ok((row, tok.and_then(Result::ok))),
            };
            match outcome {
                Err(e) if !e.is_per_example() => return Err(e),
                Err(e) => {
                    report.invalid += 1;
                    if report.errors.len() < opts.max_errors {
                        report.errors.push(ErrorEntry::from(&e));
                    }
                }
                Ok((row, tok)) => {
                    if let Some(first) = seen.insert(row.digest, row.line) {
                        seen.insert(row.digest, first);
                        report.duplicates += 1;
                        if report.warnings.len() < opts.max_errors {
                            report.warnings.push(Warning {
                                code: "data.duplicate".into(),
                                message: format!(
                                    "{}: duplicate of line {first}",
                                    At::new(path, row.line)
                                ),
                            });
                        }
                    }
                    report.examples += 1;
                    each(&row, tok.as_ref())?;
                }
            }
        }
        report.format = report.format.or(importer.format());
        progress(Progress {
            bytes: importer.bytes_read(),
            total_bytes,
            examples: report.examples + report.invalid,
        });
    }
    report.format = report.format.or(importer.format());
    Ok(report)
}

impl FileReport {
    /// The refusal `prepare` gives when there are invalid examples and `skip_invalid` is off,
    /// or when nothing usable is left.
    pub fn refuse_invalid(&self, skip_invalid: bool) -> Result<(), DataError> {
        if self.invalid > 0 && !skip_invalid {
            return Err(DataError::Invalid {
                path: self.path.clone(),
                count: self.invalid as usize,
                shown: self.errors.len(),
                summary: self
                    .errors
                    .iter()
                    .map(|e| format!("  [{}] {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
        }
        if self.examples == 0 {
            return Err(DataError::NoExamples {
                path: self.path.clone(),
                detail: format!(" ({} invalid skipped)", self.invalid),
            });
        }
        Ok(())
    }
}

/// One example as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(rename = "DatasetSample"))]
pub struct Sample {
    /// Source line.
    pub line: u64,
    /// The example as imported (for CSV: the rendered prompt / completion).
    pub example: serde_json::Value,
    /// The rendered text with trained tokens between `«` and `»` (with a model).
    pub marked: Option<String>,
    /// Tokens (with a model).
    pub tokens: Option<usize>,
    /// Trained tokens (with a model).
    pub trained: Option<usize>,
}

/// What `inspect` reports about a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct InspectReport {
    /// Format, counts, errors, warnings.
    pub file: FileReport,
    /// Token lengths (with a model).
    pub stats: Option<LengthStats>,
    /// The first few valid examples.
    pub samples: Vec<Sample>,
}

/// Scans `path` and reports on it without refusing anything.
pub fn inspect(
    path: &Path,
    opts: &DataOptions,
    model: Option<&TextModel>,
    samples: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<InspectReport, DataError> {
    let mut lengths = LengthCollector::default();
    let mut shown = Vec::new();
    let file = scan(
        path,
        opts,
        model,
        |row, tok| {
            if let Some(t) = tok {
                lengths.add(t.tokens.len(), t.mask.iter().filter(|&&m| m).count());
            }
            if shown.len() < samples {
                shown.push(Sample {
                    line: row.line,
                    example: example_json(&row.example),
                    marked: match (model, tok) {
                        (Some(m), Some(t)) => Some(marked_text(m, t)?),
                        _ => None,
                    },
                    tokens: tok.map(|t| t.tokens.len()),
                    trained: tok.map(|t| t.mask.iter().filter(|&&m| m).count()),
                });
            }
            Ok(())
        },
        progress,
    )?;
    Ok(InspectReport {
        file,
        stats: model.map(|_| lengths.finish(opts.max_seq_length)),
        samples: shown,
    })
}

/// The example as JSON, in its format's shape.
pub fn example_json(example: &Example) -> serde_json::Value {
    match example {
        Example::Chat { messages, tools } => match tools {
            Some(t) => json!({"messages": messages, "tools": t}),
            None => json!({"messages": messages}),
        },
        Example::Completion { prompt, completion } => {
            json!({"prompt": prompt, "completion": completion})
        }
        Example::Text { text } => json!({"text": text}),
    }
}

/// The decoded tokens, trained runs between `«` and `»`.
pub fn marked_text(model: &TextModel, t: &Tokenized) -> Result<String, DataError> {
    let mut out = String::new();
    let mut start = 0;
    while start < t.tokens.len() {
        let trained = t.mask[start];
        let end = t.mask[start..]
            .iter()
            .position(|&m| m != trained)
            .map_or(t.tokens.len(), |k| start + k);
        let text = model.tokenizer().decode(&t.tokens[start..end], false)?;
        if trained {
            out.push('«');
            out.push_str(&text);
            out.push('»');
        } else {
            out.push_str(&text);
        }
        start = end;
    }
    Ok(out)
}
