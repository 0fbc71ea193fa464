//! What can go wrong talking to the Hub or writing the cache, each with a stable code and a
//! message that says what to do.

use std::path::PathBuf;

/// An error from the Hub client.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("`{spec}` is not a repository id: use ORG/NAME, optionally followed by @REVISION")]
    BadRepoId { spec: String },

    #[error(
        "{what} needs a Hugging Face token ({status} from the Hub): the repository may be \
         private or misspelled; set HF_TOKEN to a token that can read it"
    )]
    Unauthorized { what: String, status: u16 },

    #[error(
        "{repo} is gated: accept its license on the model's page on the Hub (logged in), then \
         set HF_TOKEN to a token of that account and pull again ({detail})"
    )]
    Gated { repo: String, detail: String },

    #[error("the Hub refused access to {what} (403): {detail}; check that HF_TOKEN can read it")]
    Forbidden { what: String, detail: String },

    #[error("{what} was not found on the Hub (404){hint}")]
    NotFound { what: String, hint: String },

    #[error(
        "cannot reach the Hub at {endpoint}: {detail}. Check the network connection \
         (or HF_ENDPOINT); files already downloaded are kept and the next pull resumes"
    )]
    Offline { endpoint: String, detail: String },

    #[error("the Hub answered {status} for {url}: {detail}; try again later")]
    Server {
        status: u16,
        url: String,
        detail: String,
    },

    #[error("the Hub's answer for {what} was not understood: {detail}")]
    BadResponse { what: String, detail: String },

    #[error(
        "{file} failed verification twice ({detail}); the partial download was removed. \
         Try again later; if it keeps failing, the file on the Hub or a proxy is damaged"
    )]
    ChecksumMismatch { file: String, detail: String },

    #[error(
        "not enough disk space in {}: the download needs {needed} more bytes but only \
         {available} are free; free some space or move the models cache (ADAPT_MODELS_DIR)",
        path.display()
    )]
    DiskFull {
        path: PathBuf,
        needed: u64,
        available: u64,
    },

    #[error(
        "the disk filled up while writing {}; free some space (or move the models cache with \
         ADAPT_MODELS_DIR) and pull again: what was downloaded is kept",
        path.display()
    )]
    DiskFilled { path: PathBuf },

    #[error("the download was cancelled; partial files are kept and the next pull resumes them")]
    Cancelled,

    #[error(
        "the connection dropped while downloading {file} ({detail}); what arrived is kept and \
         pulling again resumes from there"
    )]
    Interrupted { file: String, detail: String },

    #[error("the repository has no file named {file}; files it has: {available}")]
    NoSuchFile { file: String, available: String },

    #[error(
        "the repository has no model files the app can use (config.json with safetensors \
         weights, or a GGUF file); name a GGUF file with --file. Files: {available}"
    )]
    NothingToPull { available: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HubError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            HubError::BadRepoId { .. } => "hub.bad_repo_id",
            HubError::Unauthorized { .. } => "hub.unauthorized",
            HubError::Gated { .. } => "hub.gated",
            HubError::Forbidden { .. } => "hub.forbidden",
            HubError::NotFound { .. } => "hub.not_found",
            HubError::Offline { .. } => "hub.offline",
            HubError::Server { .. } => "hub.server",
            HubError::BadResponse { .. } => "hub.bad_response",
            HubError::ChecksumMismatch { .. } => "hub.checksum_mismatch",
            HubError::DiskFull { .. } | HubError::DiskFilled { .. } => "hub.disk_full",
            HubError::Cancelled => "hub.cancelled",
            HubError::Interrupted { .. } => "hub.interrupted",
            HubError::NoSuchFile { .. } => "hub.no_such_file",
            HubError::NothingToPull { .. } => "hub.nothing_to_pull",
            HubError::Io { .. } => "hub.io",
        }
    }

    /// An I/O error on `path`; a full disk becomes [`HubError::DiskFilled`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> HubError {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            return HubError::DiskFilled { path };
        }
        HubError::Io { path, source }
    }
}
