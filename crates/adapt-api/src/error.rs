//! Errors at the shell boundary: a stable, typed code, a message a person can act on, and —
//! for a request whose settings are wrong — the problems keyed by field, for a form to show
//! beside each field.
//!
//! [`ErrorCode`] lists every code any crate below can produce (each library crate's errors
//! have a `code()`; the API's own codes are here too), serialized as the same strings
//! (`model.not_found`), so shells and the page match on a closed set.

use serde::{Deserialize, Serialize};

pub use adapt_engine::train::FieldProblem;

macro_rules! error_codes {
    ($($variant:ident = $code:literal,)*) => {
        /// Every error code, serialized as its string (`"model.not_found"`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS))]
        pub enum ErrorCode {
            $(#[serde(rename = $code)] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as shells print it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The code spelled `code`, if there is one.
            pub fn parse(code: &str) -> Option<ErrorCode> {
                match code {
                    $($code => Some(ErrorCode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    ApiBadName = "api.bad_name",
    ApiEngineStopped = "api.engine_stopped",
    ApiInternal = "api.internal",
    ApiIo = "api.io",
    ApiNoChat = "api.no_chat",
    ApiNoModel = "api.no_model",
    ApiNoSavedChat = "api.no_saved_chat",
    ApiThread = "api.thread",
    AppNotADataset = "app.not_a_dataset",
    AppWorker = "app.worker",
    CliNotConfirmed = "cli.not_confirmed",
    CliUsage = "cli.usage",
    ConvertExists = "convert.exists",
    DataBadOption = "data.bad_option",
    DataCacheCorrupt = "data.cache_corrupt",
    DataChatTemplate = "data.chat_template",
    DataCsvFieldCount = "data.csv_field_count",
    DataCsvHeader = "data.csv_header",
    DataCsvMalformed = "data.csv_malformed",
    DataCsvTemplate = "data.csv_template",
    DataCsvUnknownColumn = "data.csv_unknown_column",
    DataDuplicate = "data.duplicate",
    DataEmptyContent = "data.empty_content",
    DataEmptyFile = "data.empty_file",
    DataFileType = "data.file_type",
    DataFolder = "data.folder",
    DataInvalid = "data.invalid",
    DataInvalidUtf8 = "data.invalid_utf8",
    DataIo = "data.io",
    DataIsolationSet = "data.isolation_set",
    DataLineTooLong = "data.line_too_long",
    DataMalformedJson = "data.malformed_json",
    DataMaskAlignment = "data.mask_alignment",
    DataMissingKey = "data.missing_key",
    DataMixedFormats = "data.mixed_formats",
    DataNoAssistantTurn = "data.no_assistant_turn",
    DataNoExamples = "data.no_examples",
    DataNoLine = "data.no_line",
    DataTokenize = "data.tokenize",
    DataUnknownFormat = "data.unknown_format",
    DataUnknownRole = "data.unknown_role",
    DataWrongType = "data.wrong_type",
    DeviceGpuUnavailable = "device.gpu_unavailable",
    DistributedConfig = "distributed.config",
    DistributedInit = "distributed.init",
    DistributedMismatch = "distributed.mismatch",
    DistributedPeerLost = "distributed.peer_lost",
    EngineMlx = "engine.mlx",
    EnginePanicked = "engine.panicked",
    GgufBadMagic = "gguf.bad_magic",
    GgufIo = "gguf.io",
    GgufMalformed = "gguf.malformed",
    GgufTruncated = "gguf.truncated",
    GgufUnsupportedType = "gguf.unsupported_type",
    GgufUnsupportedVersion = "gguf.unsupported_version",
    HubBadRepoId = "hub.bad_repo_id",
    HubBadResponse = "hub.bad_response",
    HubCancelled = "hub.cancelled",
    HubChecksumMismatch = "hub.checksum_mismatch",
    HubDiskFull = "hub.disk_full",
    HubForbidden = "hub.forbidden",
    HubGated = "hub.gated",
    HubInterrupted = "hub.interrupted",
    HubIo = "hub.io",
    HubNoSuchFile = "hub.no_such_file",
    HubNotFound = "hub.not_found",
    HubNothingToPull = "hub.nothing_to_pull",
    HubOffline = "hub.offline",
    HubServer = "hub.server",
    HubUnauthorized = "hub.unauthorized",
    JobFailed = "job.failed",
    JobNotFound = "job.not_found",
    JobPanicked = "job.panicked",
    LaunchBadHosts = "launch.bad_hosts",
    LaunchNoProgram = "launch.no_program",
    LaunchRankFailed = "launch.rank_failed",
    LaunchSpawn = "launch.spawn",
    LibraryAlreadyInLibrary = "library.already_in_library",
    LibraryExists = "library.exists",
    LibraryIo = "library.io",
    LibraryNotAModel = "library.not_a_model",
    LibraryNotFound = "library.not_found",
    LibraryLinkOutside = "library.link_outside",
    LibraryNoFileList = "library.no_file_list",
    LibraryNotOwned = "library.not_owned",
    LibraryPartOfModel = "library.part_of_model",
    LibraryPartOfRepository = "library.part_of_repository",
    LibraryUnconfirmed = "library.unconfirmed",
    ModelInvalid = "model.invalid",
    ModelNotFound = "model.not_found",
    ModelUnsupportedArchitecture = "model.unsupported_architecture",
    ModelWriteFailed = "model.write_failed",
    PathsNoHome = "paths.no_home",
    QuantizeUnsupported = "quantize.unsupported",
    RequestInvalid = "request.invalid",
    RunNotFound = "run.not_found",
    ServeBind = "serve.bind",
    ServeBusy = "serve.busy",
    ServeCancelled = "serve.cancelled",
    ServeContextLength = "serve.context_length",
    ServeRuntime = "serve.runtime",
    ServeUnauthorized = "serve.unauthorized",
    ServeUnknownModel = "serve.unknown_model",
    StoreBusy = "store.busy",
    StoreConstraint = "store.constraint",
    StoreCreateDir = "store.create_dir",
    StoreInvalid = "store.invalid",
    StoreMigration = "store.migration",
    StoreNotADatabase = "store.not_a_database",
    StoreNotFound = "store.not_found",
    StoreOpen = "store.open",
    StoreSqlite = "store.sqlite",
    StoreTooNew = "store.too_new",
    SweepBadField = "sweep.bad_field",
    SweepBadRecord = "sweep.bad_record",
    SweepFinished = "sweep.finished",
    SweepNeedsSteps = "sweep.needs_steps",
    SweepNeedsValidation = "sweep.needs_validation",
    SweepNotFound = "sweep.not_found",
    SweepNotRunning = "sweep.not_running",
    SweepRunning = "sweep.running",
    SweepUnknownKnob = "sweep.unknown_knob",
    TextBadJson = "text.bad_json",
    TextBadTokenizerData = "text.bad_tokenizer_data",
    TextBadTokenizerJson = "text.bad_tokenizer_json",
    TextDecode = "text.decode",
    TextEncode = "text.encode",
    TextIo = "text.io",
    TextMissingMetadata = "text.missing_metadata",
    TextTemplateRaised = "text.template_raised",
    TextTemplateRender = "text.template_render",
    TextTemplateSyntax = "text.template_syntax",
    TextUnsupportedPreTokenizer = "text.unsupported_pre_tokenizer",
    TextUnsupportedTokenizer = "text.unsupported_tokenizer",
    TextWrite = "text.write",
    TrainBadConfig = "train.bad_config",
    TrainBadRun = "train.bad_run",
    TrainCalibrate = "train.calibrate",
    TrainCancelled = "train.cancelled",
    TrainDataChanged = "train.data_changed",
    TrainFinished = "train.finished",
    TrainNoAdapter = "train.no_adapter",
    TrainNoCheckpoint = "train.no_checkpoint",
    TrainNoData = "train.no_data",
    TrainNotRunning = "train.not_running",
}

impl ErrorCode {
    /// The code a library crate's error gave; one missing from this list is a bug (a test
    /// reads every `code()` in the workspace), reported as `api.internal` naming it.
    fn of(code: &str) -> (ErrorCode, Option<&str>) {
        match ErrorCode::parse(code) {
            Some(c) => (c, None),
            None => (ErrorCode::ApiInternal, Some(code)),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// `{code, message, fields}` as shells receive it.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[error("{message}")]
pub struct ApiError {
    /// Stable, machine-readable code such as `model.not_found`.
    pub code: ErrorCode,
    /// What went wrong and what to do about it.
    pub message: String,
    /// For a request whose settings are wrong: each problem by field (empty otherwise).
    pub fields: Vec<FieldProblem>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// A request refused for the problems in `fields` (warnings are not refusals).
    pub fn invalid_fields(fields: Vec<FieldProblem>) -> ApiError {
        let shown: Vec<String> = fields
            .iter()
            .filter(|p| !p.warning)
            .map(|p| format!("'{}': {}", p.field, p.message))
            .collect();
        ApiError {
            code: ErrorCode::RequestInvalid,
            message: format!("the training settings need changes: {}", shown.join("; ")),
            fields,
        }
    }

    /// An error of a library crate, by its `code()` and message.
    pub(crate) fn coded(code: &str, message: String) -> ApiError {
        match ErrorCode::of(code) {
            (code, None) => ApiError::new(code, message),
            (code, Some(unknown)) => ApiError::new(code, format!("{message} (code {unknown})")),
        }
    }

    pub(crate) fn engine_gone() -> ApiError {
        ApiError::new(
            ErrorCode::ApiEngineStopped,
            "the engine thread stopped unexpectedly",
        )
    }

    pub(crate) fn no_model() -> ApiError {
        ApiError::new(
            ErrorCode::ApiNoModel,
            "no model is loaded; load one first (for example with --model PATH)",
        )
    }

    pub(crate) fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> ApiError {
        ApiError::new(
            ErrorCode::ApiIo,
            format!("cannot {what} {}: {e}", path.display()),
        )
    }
}

macro_rules! from_coded {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for ApiError {
            fn from(e: $error) -> Self {
                ApiError::coded(e.code(), e.to_string())
            }
        })*
    };
}

from_coded!(
    adapt_engine::EngineError,
    adapt_engine::distributed::DistributedError,
    adapt_store::StoreError,
    adapt_paths::PathsError,
    adapt_data::DataError,
    adapt_hub::HubError,
    adapt_library::LibraryError,
    adapt_sweep::SweepError,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code a crate of the workspace gives in its `code()` has a variant.
    #[test]
    fn every_library_code_is_listed() {
        let crates = adapt_testsupport::manifest_dir().join("..");
        let mut missing = Vec::new();
        let mut seen = 0;
        for krate in std::fs::read_dir(&crates).unwrap().flatten() {
            for file in walk(&krate.path().join("src")) {
                let text = std::fs::read_to_string(&file).unwrap();
                let mut rest = text.as_str();
                while let Some(at) = rest.find("fn code(&self)") {
                    rest = &rest[at..];
                    let end = rest.find("\n    }\n").unwrap_or(rest.len());
                    for code in quoted(&rest[..end]) {
                        seen += 1;
                        if ErrorCode::parse(code).is_none() {
                            missing.push(format!("{code} ({})", file.display()));
                        }
                    }
                    rest = &rest[end..];
                }
            }
        }
        assert!(seen > 50, "only {seen} codes found");
        assert!(missing.is_empty(), "codes without a variant: {missing:?}");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
        out
    }

    /// The `"a.b"` strings in `text`.
    fn quoted(text: &str) -> Vec<&str> {
        text.split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| {
                s.contains('.')
                    && s.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_'
                    })
            })
            .collect()
    }

    #[test]
    fn codes_serialize_as_their_strings() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
        }
        assert_eq!(ErrorCode::ModelNotFound, "model.not_found");
    }
}
