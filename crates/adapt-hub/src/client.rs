//! The HTTP side: repository info, file downloads with manual redirects (so the Hub's own
//! headers — `X-Linked-Etag`, `X-Linked-Size`, `X-Repo-Commit` — are read from its answer
//! before the storage redirect, and `Range` survives the redirect), and the Hub's errors
//! turned into [`HubError`]s.

use std::io::Read;
use std::time::Duration;

use crate::repo::{RepoInfo, RepoSpec};
use crate::HubError;

/// Where the Hub is when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A Hub client: endpoint, optional token, and an HTTP agent.
#[derive(Clone)]
pub struct HubClient {
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Headers of a file's answer that matter for verification.
#[derive(Debug, Default, Clone)]
pub(crate) struct FileHeaders {
    /// `X-Linked-Etag` (LFS files: the sha256), else `ETag`, without quotes or `W/`.
    pub etag: Option<String>,
    /// `X-Linked-Size`, else the full length from `Content-Range` / `Content-Length`.
    pub size: Option<u64>,
    /// Where the body starts in the file (the `Content-Range` start; 0 for a 200).
    pub start: u64,
}

impl HubClient {
    /// A client for `endpoint` (no trailing slash needed), sending `token` if given.
    pub fn new(endpoint: &str, token: Option<String>) -> HubClient {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(60))
            .user_agent(concat!("adapt/", env!("CARGO_PKG_VERSION")))
            .build();
        HubClient {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.trim().is_empty()),
            agent,
        }
    }

    /// `HF_ENDPOINT` (else the public Hub) and `HF_TOKEN` (else `HUGGING_FACE_HUB_TOKEN`,
    /// else the token `huggingface-cli login` saved in `$HF_HOME/token`).
    pub fn from_env() -> HubClient {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let home = var("HF_HOME").map(std::path::PathBuf::from).or_else(|| {
                    var("HOME").map(|h| std::path::Path::new(&h).join(".cache/huggingface"))
                })?;
                std::fs::read_to_string(home.join("token")).ok()
            })
            .map(|t| t.trim().to_string());
        HubClient::new(&endpoint, token)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The commit a revision points at and the repository's files (with sizes and LFS
    /// hashes).
    pub fn repo_info(&self, spec: &RepoSpec) -> Result<RepoInfo, HubError> {
        let url = format!(
            "{}/api/models/{}/revision/{}?blobs=true",
            self.endpoint,
            spec.repo,
            encode(&spec.revision)
        );
        let what = format!("{}@{}", spec.repo, spec.revision);
        let response = self.send(&url, None, spec, &what)?;
        let info: RepoInfo =
            serde_json::from_reader(response.into_reader()).map_err(|e| HubError::BadResponse {
                what: format!("the repository info of {what}"),
                detail: e.to_string(),
            })?;
        Ok(info)
    }

    /// Starts downloading `file` of `spec` at `commit` from byte `start`; returns the headers
    /// and the body.
    pub(crate) fn open_file(
        &self,
        spec: &RepoSpec,
        commit: &str,
        file: &str,
        start: u64,
    ) -> Result<(FileHeaders, Box<dyn Read + Send + Sync>), HubError> {
        let path: Vec<String> = file.split('/').map(encode).collect();
        let url = format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            spec.repo,
            encode(commit),
            path.join("/")
        );
        let what = format!("file {file} of {}@{}", spec.repo, spec.revision);
        let mut url = url;
        let mut headers = FileHeaders::default();
        let mut same_host = true;
        for _ in 0..8 {
            let range = (start > 0).then(|| format!("bytes={start}-"));
            let response = self.send_with(&url, range.as_deref(), spec, &what, same_host)?;
            let status = response.status();
            let header = |n: &str| response.header(n).map(str::to_string);
            if headers.etag.is_none() {
                headers.etag = header("x-linked-etag")
                    .or_else(|| header("etag"))
                    .map(|e| unquote(&e));
            }
            if headers.size.is_none() {
                headers.size = header("x-linked-size").and_then(|s| s.trim().parse().ok());
            }
            if (300..400).contains(&status) {
                let location = header("location").ok_or_else(|| HubError::BadResponse {
                    what: what.clone(),
                    detail: format!("a {status} redirect without a Location"),
                })?;
                let base = url::Url::parse(&url).map_err(|e| bad_url(&url, e))?;
                let next = base.join(&location).map_err(|e| bad_url(&location, e))?;
                same_host = same_host
                    && next.host_str() == base.host_str()
                    && next.port_or_known_default() == base.port_or_known_default();
                url = next.to_string();
                continue;
            }
            if status == 206 {
                let (from, total) = header("content-range")
                    .and_then(|r| parse_content_range(&r))
                    .ok_or_else(|| HubError::BadResponse {
                        what: what.clone(),
                        detail: "a 206 answer without a valid Content-Range".into(),
                    })?;
                headers.start = from;
                headers.size = headers.size.or(total);
            } else {
                headers.start = 0;
                let length = header("content-length").and_then(|s| s.trim().parse().ok());
                headers.size = headers.size.or(length);
            }
            return Ok((headers, response.into_reader()));
        }
        Err(HubError::BadResponse {
            what,
            detail: "too many redirects".into(),
        })
    }

    fn send(
        &self,
        url: &str,
        range: Option<&str>,
        spec: &RepoSpec,
        what: &str,
    ) -> Result<ureq::Response, HubError> {
        self.send_with(url, range, spec, what, true)
    }

    fn send_with(
        &self,
        url: &str,
        range: Option<&str>,
        spec: &RepoSpec,
        what: &str,
        with_token: bool,
    ) -> Result<ureq::Response, HubError> {
        let mut request = self.agent.get(url);
        if let Some(range) = range {
            request = request.set("Range", range);
        }
        if let (Some(token), true) = (&self.token, with_token) {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        match request.call() {
            Ok(response) => Ok(response),
            Err(ureq::Error::Status(status, response)) => {
                Err(self.status_error(status, response, spec, what, url))
            }
            Err(ureq::Error::Transport(t)) => Err(HubError::Offline {
                endpoint: self.endpoint.clone(),
                detail: t.to_string(),
            }),
        }
    }

    fn status_error(
        &self,
        status: u16,
        response: ureq::Response,
        spec: &RepoSpec,
        what: &str,
        url: &str,
    ) -> HubError {
        let code = response.header("x-error-code").unwrap_or("").to_string();
        let header_message = response.header("x-error-message").map(str::to_string);
        let mut body = String::new();
        let _ = response.into_reader().take(4096).read_to_string(&mut body);
        let message = header_message
            .or_else(|| {
                serde_json::from_str::<serde_json::Value>(&body)
                    .ok()?
                    .get("error")?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| body.trim().chars().take(300).collect());
        let gated = code == "GatedRepo" || message.to_ascii_lowercase().contains("gated");
        match status {
            401 | 403 if gated => HubError::Gated {
                repo: spec.repo.clone(),
                detail: message,
            },
            401 => HubError::Unauthorized {
                what: what.to_string(),
                status,
            },
            403 => HubError::Forbidden {
                what: what.to_string(),
                detail: message,
            },
            404 => {
                let (what, hint) = match code.as_str() {
                    "RepoNotFound" => (
                        format!("repository {}", spec.repo),
                        "; check the id (a private repository also needs HF_TOKEN)".to_string(),
                    ),
                    "RevisionNotFound" => (
                        format!("revision {} of {}", spec.revision, spec.repo),
                        "; check the branch, tag or commit".to_string(),
                    ),
                    _ => (what.to_string(), String::new()),
                };
                HubError::NotFound { what, hint }
            }
            _ => HubError::Server {
                status,
                url: url.to_string(),
                detail: message,
            },
        }
    }
}

fn bad_url(url: &str, e: url::ParseError) -> HubError {
    HubError::BadResponse {
        what: url.to_string(),
        detail: format!("a redirect to an invalid address: {e}"),
    }
}

/// Percent-encodes one path segment (`/` inside a revision becomes `%2F`).
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `"abc"`, `W/"abc"` → `abc`.
fn unquote(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase()
}

/// `bytes 100-199/1000` → (100, Some(1000)); `bytes 100-199/*` → (100, None).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (from, _) = range.split_once('-')?;
    Some((from.trim().parse().ok()?, total.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_parse() {
        assert_eq!(unquote("W/\"AbC\""), "abc");
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5, Some(10))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 5-9/10"), None);
        assert_eq!(encode("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode("a b.json"), "a%20b.json");
    }
}
