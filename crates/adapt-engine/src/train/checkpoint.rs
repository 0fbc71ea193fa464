//! Checkpoints: everything a run needs to go on exactly where it stopped — adapter weights,
//! optimizer state, and a `state.json` with the step, the data position, the seed and the
//! early-stopping bookkeeping. Each is written into a hidden sibling folder, flushed to disk,
//! and renamed into place, so a kill while saving leaves the previous checkpoints intact and
//! no half-written one that looks complete.

use std::fs::File;
use std::path::{Path, PathBuf};

use adapt_data::Position;
use serde::{Deserialize, Serialize};

use super::resize::BatchResize;
use crate::error::{EngineError, Result};

pub const STATE_FILE: &str = "state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Where a run stands after an optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps taken.
    pub step: u64,
    /// The next batch to take.
    pub position: Position,
    /// Tokens trained on so far (loss-bearing tokens).
    pub trained_tokens: u64,
    pub seed: u64,
    pub best_val_loss: Option<f64>,
    pub best_step: Option<u64>,
    /// Evaluations since the validation loss last improved.
    pub evals_since_best: u64,
    /// Seconds spent training so far, over every session of the run.
    pub seconds: f64,
    /// Rows per batch (the run's, after any lowering to fit in memory).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Rows per pass through the model now (a batch in parts when lower than `batch_size`).
    #[serde(default)]
    pub micro_batch_size: Option<usize>,
    /// Every change of the micro-batch so far, oldest first.
    #[serde(default)]
    pub resizes: Vec<BatchResize>,
}

impl TrainState {
    /// The state of a run before its first step.
    pub fn fresh(seed: u64, batch_size: usize) -> TrainState {
        TrainState {
            step: 0,
            position: Position::default(),
            trained_tokens: 0,
            seed,
            best_val_loss: None,
            best_step: None,
            evals_since_best: 0,
            seconds: 0.0,
            batch_size: Some(batch_size),
            micro_batch_size: Some(batch_size),
            resizes: Vec::new(),
        }
    }
}

/// The folder of step `step`'s checkpoint in `dir`.
pub fn step_dir(dir: &Path, step: u64) -> PathBuf {
    dir.join(format!("step-{step:07}"))
}

fn write_error(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes a checkpoint folder: `fill` writes the weight files into the staging folder, then
/// the state goes in last, everything is flushed, and the folder is renamed into place.
pub fn write(
    dir: &Path,
    state: &TrainState,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let target = step_dir(dir, state.step);
    let staging = dir.join(format!(".step-{:07}.partial", state.step));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| write_error(&staging, e))?;
    fill(&staging)?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| write_error(&staging, e))?;
    std::fs::write(staging.join(STATE_FILE), json).map_err(|e| write_error(&staging, e))?;
    for entry in std::fs::read_dir(&staging).map_err(|e| write_error(&staging, e))? {
        let path = entry.map_err(|e| write_error(&staging, e))?.path();
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| write_error(&path, e))?;
    }
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staging, &target).map_err(|e| write_error(&target, e))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

/// Writes `bytes_from` (a function writing a file) to `path` through a temporary sibling and a
/// rename, so `path` is always either the old file or the whole new one.
pub fn replace_file(path: &Path, write_to: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".partial-{name}"));
    write_to(&tmp)?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| write_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| write_error(path, e))
}

/// The newest complete checkpoint in `dir`: its folder and state.
pub fn latest(dir: &Path) -> Result<Option<(PathBuf, TrainState)>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut best: Option<(PathBuf, TrainState)> = None;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_step = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("step-"));
        if !is_step {
            continue;
        }
        let Some(state) = read_state(&path) else {
            continue;
        };
        if best.as_ref().is_none_or(|(_, b)| state.step > b.step) {
            best = Some((path, state));
        }
    }
    Ok(best)
}

/// The state of the checkpoint folder `dir`, if it is complete.
pub fn read_state(dir: &Path) -> Option<TrainState> {
    let text = std::fs::read_to_string(dir.join(STATE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: u64) -> TrainState {
        TrainState {
            step,
            position: Position { epoch: 0, step },
            trained_tokens: 10 * step,
            seed: 1,
            best_val_loss: None,
            best_step: None,
            evals_since_best: 0,
            seconds: 1.0,
            batch_size: Some(4),
            micro_batch_size: Some(2),
            resizes: Vec::new(),
        }
    }

    #[test]
    fn newest_complete_checkpoint_wins_and_partials_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &state(10), |d| {
            std::fs::write(d.join("a"), b"x").map_err(|e| write_error(d, e))
        })
        .unwrap();
        write(dir.path(), &state(20), |_| Ok(())).unwrap();
        // A save killed half-way: a partial folder, and a step folder without its state.
        std::fs::create_dir_all(dir.path().join(".step-0000030.partial")).unwrap();
        std::fs::create_dir_all(dir.path().join("step-0000040")).unwrap();
        let (path, s) = latest(dir.path()).unwrap().unwrap();
        assert_eq!(s, state(20));
        assert_eq!(path, step_dir(dir.path(), 20));
        // A failing fill leaves no step folder behind.
        let e = write(dir.path(), &state(50), |d| Err(write_error(d, "disk full")));
        assert!(e.is_err());
        assert!(!step_dir(dir.path(), 50).exists());
        assert_eq!(latest(dir.path()).unwrap().unwrap().1.step, 20);
    }
}
