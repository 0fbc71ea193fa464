//! Downloads from the Hugging Face Hub into a folder in the hub cache layout
//! (`models--ORG--NAME/{blobs,snapshots,refs}`), so a pulled repository is a snapshot folder
//! the engine loads and `huggingface_hub` tools recognise.
//!
//! [`HubClient::repo_info`] asks `GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true`
//! for the commit and every file with its size and LFS sha256; [`select_files`] picks what a
//! model needs (config and tokenizer files plus the safetensors weights — the shards the index
//! names — or one named file such as a GGUF); [`HubClient::pull`] checks the disk space,
//! downloads `{endpoint}/{repo}/resolve/{commit}/{file}`, resumes partial files with `Range`,
//! verifies every file (sha256 for LFS files, the git blob hash for the others), reports
//! progress per file and in total (bytes, rate, ETA), and stops when asked.
//!
//! Why not the `hf-hub` crate: its blocking API can resume a partial file, but it cannot be
//! cancelled in the middle of a file, reports progress per file only, does not verify what it
//! downloaded against the Hub's sha256, and folds the Hub's answers (401, gated, 404, offline)
//! into errors we could not tell apart for the person. This crate does the same job over
//! `ureq` — the HTTP client `hf-hub` itself uses — and writes the same cache layout.
//!
//! `HF_ENDPOINT` and `HF_TOKEN` are read by [`HubClient::from_env`]. Errors carry a stable
//! [`HubError::code`] (`hub.unauthorized`, `hub.gated`, `hub.not_found`, `hub.offline`,
//! `hub.checksum_mismatch`, `hub.disk_full`, `hub.cancelled`, …).

mod client;
mod error;
mod pull;
mod repo;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use client::{HubClient, DEFAULT_ENDPOINT};
pub use error::HubError;
pub use pull::{PullProgress, PullRequest, Pulled, PulledFile, Stage};
pub use repo::{
    select_files, shards_from_index, Lfs, RepoInfo, RepoSpec, Sibling, METADATA_FILES,
    SAFETENSORS_INDEX,
};

/// Lower-case hexadecimal of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
