//! A run's folder: an mlx-lm adapter folder (`adapters.safetensors`, `adapter_config.json`)
//! with the best adapter so far and its `checkpoints/`.

use std::path::{Path, PathBuf};

use super::checkpoint::{self, TrainState};
use crate::adapters::{ADAPTERS_FILE, CONFIG_FILE};
use crate::error::Result;

/// Where a run keeps its files: the adapter folder (mlx-lm's layout) with `checkpoints/`.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }
    pub fn adapters(&self) -> PathBuf {
        self.dir.join(ADAPTERS_FILE)
    }
    pub fn best(&self) -> PathBuf {
        self.dir.join("best_adapters.safetensors")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }
}

/// Where the run folder `dir` stands: its newest complete checkpoint's state.
pub fn run_state(dir: &Path) -> Result<Option<TrainState>> {
    let files = RunFiles {
        dir: dir.to_path_buf(),
    };
    Ok(checkpoint::latest(&files.checkpoints())?.map(|(_, s)| s))
}
