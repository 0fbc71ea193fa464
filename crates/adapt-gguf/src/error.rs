//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while opening a GGUF file.
///
/// Every message names the file and says what to do; [`GgufError::code`] gives a stable,
/// machine-readable code for each variant.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}; check that the file exists and is readable", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with the bytes `GGUF`.
    #[error(
        "{} is not a GGUF file: it starts with {} instead of \"GGUF\"; pass a .gguf model file",
        .path.display(),
        describe_magic(.found)
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first bytes of the file (fewer than four if the file is that short).
        found: Vec<u8>,
    },

    /// The GGUF version is not 2 or 3.
    #[error(
        "{} uses GGUF version {version}, which is not supported (only versions 2 and 3 are){}; \
         convert the model again with a current llama.cpp",
        .path.display(),
        version_hint(*.version)
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version number as read (little-endian).
        version: u32,
    },

    /// The file ends before something it declares.
    #[error(
        "{} is truncated: {what} needs bytes up to {needed} but the file has {len}; re-download it",
        .path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What could not be read, e.g. `tensor 'blk.3.attn_q.weight'`.
        what: String,
        /// The file length that would have been needed (saturating at `u64::MAX`).
        needed: u64,
        /// The actual file length.
        len: u64,
    },

    /// The file is long enough but its contents make no sense.
    #[error(
        "{} is malformed at byte {offset}: {reason}; re-download it or convert it again with a current llama.cpp",
        .path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The byte offset at which the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A tensor's data cannot be decoded: its type has no decoder, or its size does not fit.
    #[error("{}: tensor '{tensor}': {source}", .path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        #[source]
        source: crate::quants::DecodeError,
    },
}

impl GgufError {
    /// A stable, machine-readable code for this error, e.g. `"gguf.truncated"`.
    pub fn code(&self) -> &'static str {
        match self {
            GgufError::Io { .. } => "gguf.io",
            GgufError::BadMagic { .. } => "gguf.bad_magic",
            GgufError::UnsupportedVersion { .. } => "gguf.unsupported_version",
            GgufError::Truncated { .. } => "gguf.truncated",
            GgufError::Malformed { .. } => "gguf.malformed",
            GgufError::Tensor { source, .. } => match source {
                crate::quants::DecodeError::Unsupported(_) => "gguf.unsupported_type",
                crate::quants::DecodeError::Size { .. } => "gguf.malformed",
            },
        }
    }
}

fn describe_magic(found: &[u8]) -> String {
    if found.is_empty() {
        return "nothing (the file is empty)".to_string();
    }
    let hex: Vec<String> = found.iter().map(|b| format!("{b:02x}")).collect();
    format!("bytes {}", hex.join(" "))
}

fn version_hint(version: u32) -> &'static str {
    if version != 0 && version.swap_bytes() <= 3 {
        " and this looks like a big-endian file, which is not supported"
    } else if version == 1 {
        " and version 1 files predate 64-bit lengths"
    } else {
        ""
    }
}
