//! Streaming import: a JSONL or CSV/TSV file becomes a sequence of validated [`Row`]s, one at a
//! time, so memory stays flat however large the file is. Per-row problems come back as errors
//! naming the line (and CSV record) and field; problems with the whole file stop the stream.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::csvmap::{CsvMapping, CsvOptions, CsvReader};
use crate::error::{At, DataError};
use crate::example::{self, type_name, Format, Keys};
use crate::row::digest;
pub use crate::row::Row;

/// Lines longer than this are refused by default (bytes).
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 << 20;

/// How to read a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImportOptions {
    /// Force a JSONL format instead of detecting it from the first line.
    pub format: Option<Format>,
    /// Keys of the completions and text formats.
    pub keys: Keys,
    /// CSV / TSV settings.
    pub csv: CsvOptions,
    /// Longest accepted line (JSONL) or record (CSV), in bytes.
    pub max_line_bytes: usize,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            format: None,
            keys: Keys::default(),
            csv: CsvOptions::default(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// The kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// JSON Lines.
    Jsonl,
    /// Comma- (or otherwise) separated values with a header row.
    Csv,
}

/// A streaming reader of one file's examples.
pub struct Importer {
    path: PathBuf,
    kind: FileKind,
    inner: Inner,
    read: Arc<AtomicU64>,
}

/// A file that counts the bytes read from it (for progress).
pub(crate) struct Counted {
    file: File,
    read: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

enum Inner {
    Jsonl(Box<JsonlReader>),
    Csv(Box<CsvReader<Counted>>),
}

impl Importer {
    /// Opens `path`, a `.csv`, `.tsv` or `.jsonl` file (see [`file_kind`]); nothing else is
    /// read.
    pub fn open(path: &Path, opts: &ImportOptions) -> Result<Importer, DataError> {
        let io = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (kind, tsv) = file_kind(path)?;
        let file = File::open(path).map_err(io)?;
        let read = Arc::new(AtomicU64::new(0));
        let counted = Counted {
            file,
            read: Arc::clone(&read),
        };
        let mut reader = BufReader::with_capacity(1 << 16, counted);
        skip_bom(&mut reader).map_err(io)?;
        let inner = match kind {
            FileKind::Jsonl => Inner::Jsonl(Box::new(JsonlReader {
                lines: LineReader {
                    inner: reader,
                    line: 0,
                    limit: opts.max_line_bytes,
                    buf: Vec::new(),
                },
                path: path.to_path_buf(),
                keys: opts.keys.clone(),
                forced: opts.format,
                format: None,
                seen_any: false,
            })),
            FileKind::Csv => {
                let limit = opts.max_line_bytes;
                let csv = CsvReader::new(reader, path, &opts.csv, &opts.keys, tsv, limit)?;
                Inner::Csv(Box::new(csv))
            }
        };
        Ok(Importer {
            path: path.to_path_buf(),
            kind,
            inner,
            read,
        })
    }

    /// Bytes read from the file so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// JSONL or CSV.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The examples' format, once known (after the first valid JSONL line; at once for CSV).
    pub fn format(&self) -> Option<Format> {
        match &self.inner {
            Inner::Jsonl(j) => j.format.map(|(f, _)| f),
            Inner::Csv(c) => Some(c.mapping().format()),
        }
    }

    /// The CSV column mapping, for CSV files.
    pub fn csv_mapping(&self) -> Option<&CsvMapping> {
        match &self.inner {
            Inner::Csv(c) => Some(c.mapping()),
            Inner::Jsonl(_) => None,
        }
    }
}

impl Importer {
    /// Up to `n` rows into `out` (emptied first), in file order: the rows the iterator gives,
    /// with CSV records read in turn and then rendered through the templates on rayon's
    /// threads.
    pub fn next_chunk(&mut self, n: usize, out: &mut Vec<Result<Row, DataError>>) {
        out.clear();
        match &mut self.inner {
            Inner::Jsonl(j) => out.extend(std::iter::from_fn(|| j.next()).take(n)),
            Inner::Csv(c) => {
                let records: Vec<_> = std::iter::from_fn(|| c.read_record()).take(n).collect();
                let renderer = c.renderer();
                records
                    .into_par_iter()
                    .map(|r| r.and_then(|r| renderer.render(&r)))
                    .collect_into_vec(out);
            }
        }
    }
}

impl Iterator for Importer {
    type Item = Result<Row, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Jsonl(j) => j.next(),
            Inner::Csv(c) => c.next(),
        }
    }
}

/// The kinds of dataset file Adapt reads, by extension (any case).
pub const DATASET_EXTENSIONS: &[&str] = &["csv", "tsv", "jsonl"];

/// The kind of the dataset file `path` by its extension — `.csv`, `.tsv` (CSV with tabs:
/// `true`) or `.jsonl` — or the error saying which files Adapt reads. Every dataset read goes
/// through this, so the app, the CLI and the API accept the same files.
pub fn file_kind(path: &Path) -> Result<(FileKind, bool), DataError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        _ if path.is_dir() => Err(DataError::FileType {
            path: path.to_path_buf(),
        }),
        Some("csv") => Ok((FileKind::Csv, false)),
        Some("tsv") => Ok((FileKind::Csv, true)),
        Some("jsonl") => Ok((FileKind::Jsonl, false)),
        _ => Err(DataError::FileType {
            path: path.to_path_buf(),
        }),
    }
}

fn skip_bom(reader: &mut impl BufRead) -> std::io::Result<()> {
    if reader.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    Ok(())
}

/// Reads lines of at most `limit` bytes without ever holding a longer one in memory.
pub(crate) struct LineReader<R> {
    pub(crate) inner: BufReader<R>,
    pub(crate) line: u64,
    pub(crate) limit: usize,
    pub(crate) buf: Vec<u8>,
}

/// A line, or the fact that it was too long.
pub(crate) enum LineRead {
    Line,
    TooLong,
}

impl<R: Read> LineReader<R> {
    /// Reads the next line into `self.buf` (without its `\n` / `\r\n`).
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<LineRead>> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let avail = self.inner.fill_buf()?;
            if avail.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (chunk, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (&avail[..i], Some(i + 1)),
                None => (avail, None),
            };
            if !too_long {
                if self.buf.len() + chunk.len() > self.limit {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            let used = done.unwrap_or(avail.len());
            self.inner.consume(used);
            if done.is_some() {
                break;
            }
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(if too_long {
            LineRead::TooLong
        } else {
            LineRead::Line
        }))
    }
}

struct JsonlReader {
    lines: LineReader<Counted>,
    path: PathBuf,
    keys: Keys,
    forced: Option<Format>,
    /// The file's format and the line that set it.
    format: Option<(Format, u64)>,
    seen_any: bool,
}

impl JsonlReader {
    fn next(&mut self) -> Option<Result<Row, DataError>> {
        loop {
            let read = match self.lines.next_line() {
                Ok(Some(r)) => r,
                Ok(None) if !self.seen_any => {
                    self.seen_any = true;
                    return Some(Err(DataError::EmptyFile {
                        at: At::new(&self.path, 0),
                        detail: String::new(),
                    }));
                }
                Ok(None) => return None,
                Err(source) => {
                    self.seen_any = true;
                    return Some(Err(DataError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            };
            let at = At::new(&self.path, self.lines.line);
            if let LineRead::TooLong = read {
                self.seen_any = true;
                return Some(Err(DataError::LineTooLong {
                    at,
                    limit: self.lines.limit,
                }));
            }
            if self.lines.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.seen_any = true;
            return Some(self.parse_line(at));
        }
    }

    fn parse_line(&mut self, at: At) -> Result<Row, DataError> {
        let text = std::str::from_utf8(&self.lines.buf).map_err(|e| DataError::InvalidUtf8 {
            at: at.clone(),
            byte: e.valid_up_to(),
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| DataError::MalformedJson {
            at: at.clone(),
            message: json_message(&e),
        })?;
        let Value::Object(obj) = value else {
            return Err(DataError::WrongType {
                at,
                expected: "a JSON object",
                found: type_name(&value),
            });
        };
        let format = match (self.forced, self.format) {
            (Some(f), _) => f,
            (None, found) => {
                let Some(this) = example::detect(&obj, &self.keys) else {
                    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
                    return Err(DataError::UnknownFormat {
                        at,
                        keys: keys.join(", "),
                    });
                };
                match found {
                    None => {
                        self.format = Some((this, at.line));
                        this
                    }
                    Some((f, first_line)) if f != this => {
                        return Err(DataError::MixedFormats {
                            at,
                            found: this.name(),
                            expected: f.name(),
                            first_line,
                        })
                    }
                    Some((f, _)) => f,
                }
            }
        };
        if self.format.is_none() {
            self.format = Some((format, at.line));
        }
        let line = at.line;
        let example = example::parse(obj, format, &self.keys, &at)?;
        Ok(Row {
            line,
            example,
            digest: digest(&[text.trim().as_bytes()]),
        })
    }
}

/// serde_json's message without its "at line 1" (a JSONL line is always line 1 to it).
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let base = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => &full,
    };
    format!("{base} at column {}", e.column())
}
