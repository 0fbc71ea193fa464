//! Where Adapt keeps things, resolved once from the environment and the platform.
//!
//! - [`DataDir`]: one root per user holding the database, runs, adapters and KV caches —
//!   `ADAPT_DATA_DIR` if set; macOS `~/Library/Application Support/Adapt`; elsewhere
//!   `$XDG_DATA_HOME/adapt` or `~/.local/share/adapt`.
//! - [`models_dir`]: the models cache — a flag, else `ADAPT_MODELS_DIR`, else the person's
//!   setting, else `models-cache/` of a development checkout (the current directory), else
//!   `<data dir>/models`.
//! - [`dataset_cache`]: prepared (tokenized) datasets — `ADAPT_CACHE_DIR/datasets`, else
//!   `$XDG_CACHE_HOME/adapt/datasets`, else `~/.cache/adapt/datasets` (macOS
//!   `~/Library/Caches/Adapt/datasets`).
//! - [`hub`]: the Hugging Face hub cache (`HF_HUB_CACHE`, `HF_HOME/hub`,
//!   `~/.cache/huggingface/hub`) and the models already in it, read in place, never copied.
//!
//! Every function takes an [`Env`] so tests can resolve paths for any platform and any
//! environment without touching the process's own.

pub mod hub;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The environment variables and platform that paths are resolved from.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Vec<(String, OsString)>,
    /// `std::env::consts::OS` of the platform to resolve for.
    pub os: String,
    /// The current directory.
    pub cwd: PathBuf,
}

impl Env {
    /// This process's environment, platform and current directory.
    pub fn current() -> Env {
        let names = [
            "ADAPT_DATA_DIR",
            "ADAPT_MODELS_DIR",
            "ADAPT_CACHE_DIR",
            "HOME",
            "XDG_DATA_HOME",
            "XDG_CACHE_HOME",
            "HF_HOME",
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
        ];
        Env {
            vars: names
                .iter()
                .filter_map(|n| std::env::var_os(n).map(|v| (n.to_string(), v)))
                .collect(),
            os: std::env::consts::OS.to_string(),
            cwd: std::env::current_dir().unwrap_or_default(),
        }
    }

    /// An environment with only `vars`, for tests.
    pub fn with(os: &str, cwd: &Path, vars: &[(&str, &str)]) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect(),
            os: os.to_string(),
            cwd: cwd.to_path_buf(),
        }
    }

    /// A variable's value; an empty one counts as unset.
    pub fn var(&self, name: &str) -> Option<PathBuf> {
        self.vars
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    }

    fn home(&self) -> Result<PathBuf, PathsError> {
        self.var("HOME").ok_or(PathsError::NoHome)
    }

    /// Relative paths in variables are taken from the current directory.
    fn absolute(&self, path: PathBuf) -> PathBuf {
        if path.is_absolute() {
            path
        } else {
            self.cwd.join(path)
        }
    }
}

/// Why a location could not be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathsError {
    #[error("cannot find your home directory (HOME is not set); set ADAPT_DATA_DIR to the folder Adapt should keep its data in")]
    NoHome,
}

impl PathsError {
    /// Stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PathsError::NoHome => "paths.no_home",
        }
    }
}

/// The per-user data directory and what lives in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// `ADAPT_DATA_DIR`, else the platform's per-user data folder.
    pub fn resolve(env: &Env) -> Result<DataDir, PathsError> {
        if let Some(dir) = env.var("ADAPT_DATA_DIR") {
            return Ok(DataDir::at(env.absolute(dir)));
        }
        let root = if env.os == "macos" {
            env.home()?.join("Library/Application Support/Adapt")
        } else if let Some(data) = env.var("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
            data.join("adapt")
        } else {
            env.home()?.join(".local/share/adapt")
        };
        Ok(DataDir::at(root))
    }

    /// A data directory at `root` (tests, or an explicit choice).
    pub fn at(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("adapt.db")
    }

    /// One folder per training run (checkpoints, logs).
    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// Trained adapters (mlx-lm layout).
    pub fn adapters(&self) -> PathBuf {
        self.root.join("adapters")
    }

    /// Saved KV caches.
    pub fn kv_caches(&self) -> PathBuf {
        self.root.join("kv-caches")
    }

    /// Where models go when nothing else says (see [`models_dir`]).
    pub fn default_models(&self) -> PathBuf {
        self.root.join("models")
    }
}

/// The models cache: `flag`, else `ADAPT_MODELS_DIR`, else `setting`, else `models-cache`
/// in the current directory if there is one (a development checkout), else the data
/// directory's `models`.
pub fn models_dir(
    env: &Env,
    data: &DataDir,
    flag: Option<&Path>,
    setting: Option<&Path>,
) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| env.var("ADAPT_MODELS_DIR"))
        .or_else(|| setting.map(Path::to_path_buf))
        .map(|p| env.absolute(p))
        .or_else(|| Some(env.cwd.join("models-cache")).filter(|p| p.is_dir()))
        .unwrap_or_else(|| data.default_models())
}

/// Where prepared datasets are cached: `ADAPT_CACHE_DIR/datasets`, else the platform's
/// per-user cache folder (`~/Library/Caches/Adapt` on macOS; `$XDG_CACHE_HOME/adapt` or
/// `~/.cache/adapt` elsewhere) + `datasets`.
pub fn dataset_cache(env: &Env) -> Result<PathBuf, PathsError> {
    let root = if let Some(dir) = env.var("ADAPT_CACHE_DIR") {
        env.absolute(dir)
    } else if env.os == "macos" {
        env.home()?.join("Library/Caches/Adapt")
    } else if let Some(cache) = env.var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        cache.join("adapt")
    } else {
        env.home()?.join(".cache/adapt")
    };
    Ok(root.join("datasets"))
}

#[cfg(test)]
mod tests;
