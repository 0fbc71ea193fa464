//! The prompt cache on disk, so a server's first requests after a restart are warm: the most
//! recently used cached sequences are written (mlx-lm's prompt-cache format, one file each,
//! under `kv-caches/prompts/` in the data directory, recorded in the store's `kv_caches`
//! table without a conversation) within the disk budget, and read back into memory — those
//! of the loaded model, within the memory budget — when serving starts.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use adapt_engine::{CacheKey, LoadedModel};
use serde::Serialize;

use crate::adapt::Adapt;
use crate::budgets;
use crate::engine_thread::EngineState;
use crate::error::ApiError;

/// The metadata key holding a file's cache key.
const KEY_KEY: &str = "adapt.prompt_key";

/// Prompt caches read back from disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RestoredPrompts {
    pub caches: usize,
    pub tokens: usize,
    pub bytes: u64,
}

/// Prompt caches written to disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SavedPrompts {
    pub caches: usize,
    pub tokens: usize,
    pub bytes: u64,
}

/// The key of prompt caches for `lm`'s weights with `adapter` (template options: none).
pub(crate) fn prompt_key(lm: &LoadedModel, adapter: Option<&(PathBuf, String)>) -> CacheKey {
    CacheKey::with_adapter(lm, adapter, &adapt_engine::ChatOptions::default())
}

/// One file written: its key, path, tokens and bytes.
type Written = (CacheKey, PathBuf, usize, u64);

impl Adapt {
    /// The folder of the prompt-cache files.
    fn prompts_dir(&self) -> Result<PathBuf, ApiError> {
        Ok(self.data_dir()?.kv_caches().join("prompts"))
    }

    /// Writes the most recently used prompt caches in memory to disk, within the disk
    /// budget, and forgets older files of earlier runs; returns what is on disk now.
    pub fn save_prompt_caches(&self) -> Result<SavedPrompts, ApiError> {
        let dir = self.prompts_dir()?;
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::io("create", &dir, e))?;
        let budget = self.cache_budgets().disk;
        let folder = dir.clone();
        let written = self
            .engine
            .call(move |state| save_on_engine(state, &folder, budget))?;
        let mut store = self.store()?;
        let kept: HashSet<&Path> = written.iter().map(|w| w.1.as_path()).collect();
        for old in store.kv_caches()? {
            if old.conversation_id.is_none()
                && old.file.starts_with(&dir)
                && !kept.contains(old.file.as_path())
            {
                let _ = std::fs::remove_file(&old.file);
                store.remove_kv_cache(old.id)?;
            }
        }
        let mut saved = SavedPrompts::default();
        for (key, path, tokens, bytes) in &written {
            store.put_kv_cache(
                &crate::chats::store_key(key),
                None,
                path,
                *tokens as u64,
                *bytes,
            )?;
            saved.caches += 1;
            saved.tokens += tokens;
            saved.bytes += bytes;
        }
        drop(store);
        if let Some((_, newest, _, _)) = written.first() {
            self.keep_disk_budget(newest)?;
        }
        Ok(saved)
    }

    /// Reads the prompt caches on disk that belong to the loaded model back into memory,
    /// most recently used first, as many as the memory budget holds.
    pub fn restore_prompt_caches(&self) -> Result<RestoredPrompts, ApiError> {
        let dir = self.prompts_dir()?;
        let mut rows = self.store()?.kv_caches()?;
        rows.retain(|r| {
            r.conversation_id.is_none() && r.file.starts_with(&dir) && r.file.is_file()
        });
        rows.reverse();
        let mut room = budgets::read(&self.records).memory;
        let mut files = Vec::new();
        for row in rows {
            if row.bytes > room {
                break;
            }
            room -= row.bytes;
            files.push(row.file);
        }
        // Least recently used first, so the newest is the last one touched.
        files.reverse();
        self.engine
            .call(move |state| restore_on_engine(state, files))
    }
}

/// On the engine thread: writes the most recently used caches within `budget` bytes into
/// `dir` (a file whose name says it holds the same tokens under the same key is kept).
fn save_on_engine(state: &EngineState, dir: &Path, budget: u64) -> Result<Vec<Written>, ApiError> {
    let mut written = Vec::new();
    let mut total = 0u64;
    for (key, cache) in state.chats.prefixes.entries() {
        let text = serde_json::to_string(key).unwrap_or_default();
        let name = format!("{:016x}.safetensors", fnv1a(text.as_bytes(), &cache.tokens));
        let path = dir.join(name);
        let bytes = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(_) => {
                let metadata = HashMap::from([(KEY_KEY.to_string(), text)]);
                adapt_engine::prompt_cache::save(&path, cache, &metadata)?
            }
        };
        if total + bytes > budget {
            let _ = std::fs::remove_file(&path);
            break;
        }
        total += bytes;
        written.push((key.clone(), path, cache.tokens.len(), bytes));
    }
    Ok(written)
}

/// On the engine thread: keeps the caches in `files` that belong to the loaded model.
fn restore_on_engine(
    state: &mut EngineState,
    files: Vec<PathBuf>,
) -> Result<RestoredPrompts, ApiError> {
    let EngineState { model, chats, .. } = state;
    let lm = model.as_ref().ok_or_else(ApiError::no_model)?;
    let model_key = prompt_key(lm, None).model;
    let mut restored = RestoredPrompts::default();
    for file in files {
        let Ok((cache, metadata)) = adapt_engine::prompt_cache::load(&file) else {
            continue;
        };
        let key: Option<CacheKey> = metadata
            .get(KEY_KEY)
            .and_then(|k| serde_json::from_str(k).ok());
        let Some(key) = key.filter(|k| k.model == model_key) else {
            continue;
        };
        if cache.layers.len() != lm.model.n_layers() || cache.tokens.is_empty() {
            continue;
        }
        restored.caches += 1;
        restored.tokens += cache.tokens.len();
        restored.bytes += cache.nbytes() as u64;
        chats.prefixes.keep(&key, cache);
    }
    chats.enforce(lm, 0)?;
    Ok(restored)
}

/// FNV-1a over a key's text and token ids: the file name of a cached sequence.
fn fnv1a(text: &[u8], tokens: &[u32]) -> u64 {
    let bytes = text
        .iter()
        .copied()
        .chain(tokens.iter().flat_map(|t| t.to_le_bytes()));
    bytes.fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
