//! How much room KV caches get: a memory budget for the caches of open conversations (the
//! engine thread's pool keeps within it) and a disk budget for saved ones, both kept as
//! settings.

use serde::Serialize;

use crate::engine_thread::Engine;
use crate::error::ApiError;
use crate::records::Records;

/// The setting holding the memory budget for KV caches, in bytes.
pub(crate) const MEMORY_SETTING: &str = "kv_cache_memory_budget";
/// The setting holding the disk budget for saved KV caches, in bytes.
pub(crate) const DISK_SETTING: &str = "kv_cache_disk_budget";
/// Default memory budget: 4 GiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 4 << 30;
/// Default disk budget: 20 GiB.
pub const DEFAULT_DISK_BUDGET: u64 = 20 << 30;

/// How much room KV caches get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheBudgets {
    pub memory: u64,
    pub disk: u64,
}

/// The budgets in the settings, or the defaults.
pub(crate) fn read(records: &Records) -> CacheBudgets {
    let setting = |key: &str, default: u64| {
        records
            .store()
            .ok()
            .and_then(|s| s.setting(key).ok().flatten())
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    CacheBudgets {
        memory: setting(MEMORY_SETTING, DEFAULT_MEMORY_BUDGET),
        disk: setting(DISK_SETTING, DEFAULT_DISK_BUDGET),
    }
}

/// Has the engine thread keep conversations' caches within `bytes`.
pub(crate) fn apply_memory(engine: &Engine, bytes: u64) -> Result<(), ApiError> {
    engine.post(move |state| state.chats.set_memory_budget(Some(bytes as usize)))
}
