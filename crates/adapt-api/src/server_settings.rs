//! The local server's settings — the same for `adapt serve` and the app's Server panel, which
//! remembers them in the store — and its API key: the one given, or, when the server listens
//! beyond this machine without one, a key generated once and kept in the data directory.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::adapt::Adapt;
use crate::error::{ApiError, ErrorCode};
use crate::serve_prompt::bad_field;

/// The setting holding the server's settings (JSON).
const SETTING: &str = "server";

/// How the local server runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct ServerSettings {
    /// The model to serve (`None`: the bundled one).
    pub model: Option<PathBuf>,
    /// The adapter requests get when they name no model: a run id or a folder.
    pub adapter: Option<String>,
    pub host: String,
    pub port: u16,
    /// Required of clients (`Authorization: Bearer KEY`); `None` on loopback: no key.
    pub api_key: Option<String>,
    /// Requests accepted at once (one runs, the others wait in order); more are refused as
    /// busy.
    pub max_concurrency: usize,
    /// The most tokens a request may ask to generate.
    pub max_tokens: usize,
    /// Memory for prompt caches, in MB (`None`: the saved budget).
    pub cache_memory_mb: Option<u64>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            model: None,
            adapter: None,
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            max_concurrency: 16,
            max_tokens: 4096,
            cache_memory_mb: None,
        }
    }
}

impl ServerSettings {
    /// Refuses settings a server cannot run with, naming the field.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.host.parse::<IpAddr>().is_err() && self.host != "localhost" {
            return Err(bad_field(
                "host",
                format!("'{}' is not an IP address", self.host),
            ));
        }
        if self.max_concurrency == 0 {
            return Err(bad_field("max_concurrency", "at least 1"));
        }
        if self.max_tokens == 0 {
            return Err(bad_field("max_tokens", "at least 1"));
        }
        if self.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(bad_field("api_key", "an empty key protects nothing"));
        }
        Ok(())
    }

    /// Whether the server listens on this machine only.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl Adapt {
    /// The saved server settings, or the defaults.
    pub fn server_settings(&self) -> ServerSettings {
        self.store()
            .ok()
            .and_then(|s| s.setting(SETTING).ok().flatten())
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default()
    }

    /// Checks and saves the server settings.
    pub fn set_server_settings(&self, settings: &ServerSettings) -> Result<(), ApiError> {
        settings.check()?;
        let text = serde_json::to_string(settings).map_err(|e| {
            ApiError::new(
                ErrorCode::ApiInternal,
                format!("cannot write the settings: {e}"),
            )
        })?;
        self.store()?.set_setting(SETTING, &text)?;
        Ok(())
    }

    /// The key clients must send: the one in `settings`; else, when the server listens
    /// beyond this machine, the key kept in the data directory (generated the first time);
    /// else none.
    pub fn server_key(&self, settings: &ServerSettings) -> Result<Option<String>, ApiError> {
        if let Some(key) = &settings.api_key {
            return Ok(Some(key.clone()));
        }
        if settings.is_loopback() {
            return Ok(None);
        }
        let file = self.data_dir()?.root().join("server").join("api-key");
        if let Ok(key) = std::fs::read_to_string(&file) {
            if !key.trim().is_empty() {
                return Ok(Some(key.trim().to_string()));
            }
        }
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| {
            ApiError::new(
                ErrorCode::ApiInternal,
                format!("no randomness for a key: {e}"),
            )
        })?;
        let key: String = std::iter::once("sk-adapt-".to_string())
            .chain(bytes.iter().map(|b| format!("{b:02x}")))
            .collect();
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ApiError::io("create", dir, e))?;
        }
        std::fs::write(&file, &key).map_err(|e| ApiError::io("write", &file, e))?;
        Ok(Some(key))
    }
}
