//! The error type of this crate: every problem names the file, the line (and CSV record) and,
//! where there is one, the field; [`DataError::code`] gives a stable code per kind.

use std::fmt;
use std::path::PathBuf;

/// Where a problem is: file, 1-based line, CSV record number, field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    /// The input file.
    pub path: PathBuf,
    /// 1-based line where the example starts (0 when the problem concerns the whole file).
    pub line: u64,
    /// 1-based CSV data record (the header is not counted), for CSV input.
    pub record: Option<u64>,
    /// The field, e.g. `messages[2].role` or the CSV column `Age`.
    pub field: Option<String>,
}

impl At {
    /// A location in `path` at `line`.
    pub fn new(path: impl Into<PathBuf>, line: u64) -> At {
        At {
            path: path.into(),
            line,
            record: None,
            field: None,
        }
    }

    /// The same location, naming `field`.
    pub fn field(mut self, field: impl Into<String>) -> At {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(r) = self.record {
            write!(f, " (record {r})")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field '{field}'")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong while importing, rendering, caching or batching a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or written.
    #[error("cannot access {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file of a kind Adapt does not read as a dataset.
    #[error(
        "{}: Adapt reads datasets from CSV (.csv), TSV (.tsv) and JSON Lines (.jsonl) files{}",
        .path.display(),
        file_type_hint(.path)
    )]
    FileType {
        /// The file.
        path: PathBuf,
    },
    /// A folder that is not a dataset folder in mlx-lm's layout.
    #[error("{}: {detail}", .path.display())]
    DataFolder {
        /// The folder.
        path: PathBuf,
        /// What is missing and what to do.
        detail: String,
    },
    /// The file holds no data.
    #[error("{at}: the file is empty{detail}; add at least one example")]
    EmptyFile {
        /// The file.
        at: At,
        /// Extra detail such as " (a header but no rows)".
        detail: String,
    },
    /// A line is not valid UTF-8.
    #[error("{at}: not valid UTF-8 (at byte {byte} of the {}); save the file as UTF-8", if .at.field.is_some() { "field" } else { "line" })]
    InvalidUtf8 {
        /// Where.
        at: At,
        /// Byte offset of the first bad byte within the line.
        byte: usize,
    },
    /// A line is longer than the limit.
    #[error("{at}: the line is longer than {limit} bytes; split it or raise the line limit")]
    LineTooLong {
        /// Where.
        at: At,
        /// The limit in bytes.
        limit: usize,
    },
    /// A JSONL line is not valid JSON.
    #[error("{at}: malformed JSON: {message}")]
    MalformedJson {
        /// Where.
        at: At,
        /// What the parser said.
        message: String,
    },
    /// A value has the wrong JSON type.
    #[error("{at}: expected {expected}, found {found}")]
    WrongType {
        /// Where.
        at: At,
        /// The expected type.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A required key is missing.
    #[error("{at}: missing key '{key}'")]
    MissingKey {
        /// Where.
        at: At,
        /// The missing key.
        key: String,
    },
    /// A text is empty (or only whitespace).
    #[error("{at}: empty content")]
    EmptyContent {
        /// Where.
        at: At,
    },
    /// A chat message has a role we do not know.
    #[error("{at}: unknown role '{role}' (expected system, user, assistant or tool)")]
    UnknownRole {
        /// Where.
        at: At,
        /// The role found.
        role: String,
    },
    /// A chat has nothing to train on.
    #[error("{at}: the chat has no assistant turn, so there is nothing to train on")]
    NoAssistantTurn {
        /// Where.
        at: At,
    },
    /// A line's format differs from the file's.
    #[error("{at}: this line is {found} but the file is {expected} (from line {first_line}); keep one format per file")]
    MixedFormats {
        /// Where.
        at: At,
        /// The line's format.
        found: &'static str,
        /// The file's format.
        expected: &'static str,
        /// The line that set the file's format.
        first_line: u64,
    },
    /// A JSON line matches no known format.
    #[error("{at}: unknown format with keys [{keys}]; expected 'messages' (chat), 'prompt'+'completion' (completions) or 'text'")]
    UnknownFormat {
        /// Where.
        at: At,
        /// The keys found.
        keys: String,
    },
    /// A CSV record has the wrong number of fields.
    #[error("{at}: {found} fields but the header has {expected}; check the quoting and delimiters of this row")]
    CsvFieldCount {
        /// Where.
        at: At,
        /// Fields in the header.
        expected: usize,
        /// Fields in this record.
        found: usize,
    },
    /// The CSV could not be parsed.
    #[error("{at}: malformed CSV: {message}")]
    CsvMalformed {
        /// Where.
        at: At,
        /// What the parser said.
        message: String,
    },
    /// A CSV header names the same column twice or has an empty name.
    #[error("{at}: bad header: {message}")]
    CsvHeader {
        /// Where.
        at: At,
        /// What is wrong.
        message: String,
    },
    /// A CSV template or option names a column the file does not have.
    #[error("{at}: no column '{column}' in the file (columns: {available})")]
    CsvUnknownColumn {
        /// Where (the header line).
        at: At,
        /// The column.
        column: String,
        /// The file's columns.
        available: String,
    },
    /// A CSV template does not compile or fails on a row.
    #[error("{at}: template error: {message}")]
    CsvTemplate {
        /// Where.
        at: At,
        /// What minijinja said.
        message: String,
    },
    /// The model's chat template failed on an example.
    #[error("{at}: the chat template failed: {message}")]
    ChatTemplate {
        /// Where.
        at: At,
        /// What the template said.
        message: String,
    },
    /// The chat template renders a conversation so that assistant turns cannot be located.
    #[error("{at}: cannot locate assistant turns in the rendered chat: {message}")]
    MaskAlignment {
        /// Where.
        at: At,
        /// What did not line up.
        message: String,
    },
    /// Tokenization failed.
    #[error("{at}: tokenization failed: {message}")]
    Tokenize {
        /// Where.
        at: At,
        /// What the tokenizer said.
        message: String,
    },
    /// A conversation of an isolation set that breaks the set's rules.
    #[error("{at}: {message}")]
    IsolationSet {
        /// Where.
        at: At,
        /// What is wrong and what to do.
        message: String,
    },
    /// Invalid examples were found and `skip_invalid` is off.
    #[error("{} has {count} invalid example(s); fix them or pass --skip-invalid. First {}:\n{summary}", .path.display(), .shown)]
    Invalid {
        /// The file.
        path: PathBuf,
        /// How many examples were invalid.
        count: usize,
        /// How many are listed.
        shown: usize,
        /// One error per line.
        summary: String,
    },
    /// No usable example is left.
    #[error("{} has no usable examples{detail}", .path.display())]
    NoExamples {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A cache file is damaged.
    #[error("{}: damaged dataset cache: {message}; delete it to rebuild", .path.display())]
    CacheCorrupt {
        /// The cache file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An option is out of range.
    #[error("bad option: {message}")]
    BadOption {
        /// What is wrong.
        message: String,
    },
    /// Loading the tokenizer or chat template failed.
    #[error(transparent)]
    Text(#[from] adapt_text::TextError),
    /// Reading the model file failed.
    #[error(transparent)]
    Gguf(#[from] adapt_gguf::GgufError),
}

impl DataError {
    /// A stable, machine-readable code for the kind of problem.
    /// Where in the input the problem is, when it concerns a place in a file.
    pub fn at(&self) -> Option<&At> {
        match self {
            DataError::EmptyFile { at, .. }
            | DataError::InvalidUtf8 { at, .. }
            | DataError::LineTooLong { at, .. }
            | DataError::MalformedJson { at, .. }
            | DataError::WrongType { at, .. }
            | DataError::MissingKey { at, .. }
            | DataError::EmptyContent { at, .. }
            | DataError::UnknownRole { at, .. }
            | DataError::NoAssistantTurn { at, .. }
            | DataError::MixedFormats { at, .. }
            | DataError::UnknownFormat { at, .. }
            | DataError::CsvFieldCount { at, .. }
            | DataError::CsvMalformed { at, .. }
            | DataError::CsvHeader { at, .. }
            | DataError::CsvUnknownColumn { at, .. }
            | DataError::CsvTemplate { at, .. }
            | DataError::ChatTemplate { at, .. }
            | DataError::MaskAlignment { at, .. }
            | DataError::Tokenize { at, .. } => Some(at),
            _ => None,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            DataError::Io { .. } => "data.io",
            DataError::FileType { .. } => "data.file_type",
            DataError::DataFolder { .. } => "data.folder",
            DataError::EmptyFile { .. } => "data.empty_file",
            DataError::InvalidUtf8 { .. } => "data.invalid_utf8",
            DataError::LineTooLong { .. } => "data.line_too_long",
            DataError::MalformedJson { .. } => "data.malformed_json",
            DataError::WrongType { .. } => "data.wrong_type",
            DataError::MissingKey { .. } => "data.missing_key",
            DataError::EmptyContent { .. } => "data.empty_content",
            DataError::UnknownRole { .. } => "data.unknown_role",
            DataError::NoAssistantTurn { .. } => "data.no_assistant_turn",
            DataError::MixedFormats { .. } => "data.mixed_formats",
            DataError::UnknownFormat { .. } => "data.unknown_format",
            DataError::CsvFieldCount { .. } => "data.csv_field_count",
            DataError::CsvMalformed { .. } => "data.csv_malformed",
            DataError::CsvHeader { .. } => "data.csv_header",
            DataError::CsvUnknownColumn { .. } => "data.csv_unknown_column",
            DataError::CsvTemplate { .. } => "data.csv_template",
            DataError::ChatTemplate { .. } => "data.chat_template",
            DataError::MaskAlignment { .. } => "data.mask_alignment",
            DataError::Tokenize { .. } => "data.tokenize",
            DataError::Invalid { .. } => "data.invalid",
            DataError::IsolationSet { .. } => "data.isolation_set",
            DataError::NoExamples { .. } => "data.no_examples",
            DataError::CacheCorrupt { .. } => "data.cache_corrupt",
            DataError::BadOption { .. } => "data.bad_option",
            DataError::Text(e) => e.code(),
            DataError::Gguf(e) => e.code(),
        }
    }

    /// Whether the problem concerns one example only (so `skip_invalid` may skip it), rather
    /// than the whole file.
    pub fn is_per_example(&self) -> bool {
        !matches!(
            self,
            DataError::Io { .. }
                | DataError::FileType { .. }
                | DataError::DataFolder { .. }
                | DataError::EmptyFile { .. }
                | DataError::CsvHeader { .. }
                | DataError::CsvUnknownColumn { .. }
                | DataError::Invalid { .. }
                | DataError::NoExamples { .. }
                | DataError::CacheCorrupt { .. }
                | DataError::BadOption { .. }
                | DataError::Text(_)
                | DataError::Gguf(_)
        )
    }
}

/// What to do about a file of the wrong kind, by its name.
fn file_type_hint(path: &std::path::Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("json") => {
            "; if this file holds one JSON object per line it is JSON Lines: rename it .jsonl"
        }
        _ if path.is_dir() => {
            "; a folder is read as mlx-lm's data folder (train.jsonl, valid.jsonl, test.jsonl) \
             where training takes one"
        }
        _ => "; save the data as one of those",
    }
}

/// A problem that does not make an example unusable (e.g. a duplicate).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Warning {
    /// Stable code, e.g. `data.duplicate`.
    pub code: String,
    /// What and where.
    pub message: String,
}
