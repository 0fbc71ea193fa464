//! Writing a model folder as mlx-lm and Hugging Face write them: `config.json`, safetensors
//! (sharded above [`MAX_SHARD_BYTES`], with `model.safetensors.index.json`), plus whatever
//! other files the caller adds. Everything is written into a temporary sibling folder that is
//! renamed into place at the end, so an interrupted run never leaves a half-written model.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use mlx_rs::Array;
use serde_json::{json, Value};

use crate::error::{EngineError, Result};

/// Largest safetensors file written before splitting into shards.
pub const MAX_SHARD_BYTES: usize = 5 << 30;

/// A folder being written; [`Staging::finish`] moves it into place.
pub struct Staging {
    pub tmp: PathBuf,
    out: PathBuf,
}

impl Staging {
    /// Starts writing the folder `out`, which must not exist yet (or be empty).
    pub fn new(out: &Path) -> Result<Staging> {
        let not_empty = fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
        if not_empty || out.is_file() {
            return Err(EngineError::InvalidRequest(format!(
                "{} already exists; choose a new output folder or remove it first",
                out.display()
            )));
        }
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let tmp = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        Ok(Staging {
            tmp,
            out: out.to_path_buf(),
        })
    }

    /// Writes `value` as pretty JSON to `name` in the folder.
    pub fn json(&self, name: &str, value: &Value) -> Result<()> {
        let path = self.tmp.join(name);
        let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
        fs::write(&path, text + "\n").map_err(|e| io(&path, e))
    }

    /// Copies `file` into the folder under its own name.
    pub fn copy(&self, file: &Path) -> Result<()> {
        let Some(name) = file.file_name() else {
            return Ok(());
        };
        let to = self.tmp.join(name);
        fs::copy(file, &to).map(|_| ()).map_err(|e| io(&to, e))
    }

    /// Writes the tensors as `model.safetensors`, or as shards with an index when large.
    /// Returns the bytes written.
    pub fn weights(&self, arrays: &HashMap<String, Array>) -> Result<u64> {
        let sorted: BTreeMap<&str, &Array> = arrays.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut shards: Vec<Vec<(&str, &Array)>> = vec![Vec::new()];
        let mut size = 0usize;
        for (name, a) in sorted {
            if size + a.nbytes() > MAX_SHARD_BYTES && !shards.last().is_some_and(Vec::is_empty) {
                shards.push(Vec::new());
                size = 0;
            }
            size += a.nbytes();
            shards.last_mut().expect("one shard").push((name, a));
        }
        let metadata = HashMap::from([("format".to_string(), "mlx".to_string())]);
        let n = shards.len();
        let mut weight_map = serde_json::Map::new();
        let mut total = 0u64;
        for (i, shard) in shards.iter().enumerate() {
            let file = if n == 1 {
                "model.safetensors".to_string()
            } else {
                format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
            };
            let path = self.tmp.join(&file);
            Array::save_safetensors(shard.iter().copied(), &metadata, &path).map_err(|e| {
                EngineError::Write {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
            total += fs::metadata(&path).map_err(|e| io(&path, e))?.len();
            for (name, _) in shard {
                weight_map.insert(name.to_string(), Value::from(file.clone()));
            }
        }
        if n > 1 {
            let bytes: usize = arrays.values().map(Array::nbytes).sum();
            self.json(
                "model.safetensors.index.json",
                &json!({"metadata": {"total_size": bytes}, "weight_map": weight_map}),
            )?;
        }
        Ok(total)
    }

    /// Moves the finished folder into place.
    pub fn finish(self) -> Result<PathBuf> {
        if self.out.is_dir() {
            // Empty (checked at the start): replace it.
            let _ = fs::remove_dir(&self.out);
        }
        if let Some(parent) = self.out.parent() {
            fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        fs::rename(&self.tmp, &self.out).map_err(|e| io(&self.out, e))?;
        Ok(self.out.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Only a folder that never reached `finish` is still here.
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

fn io(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Total size of the safetensors files in `dir`.
pub fn weights_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
