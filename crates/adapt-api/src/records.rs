//! [`Records`]: what `Adapt` keeps besides the engine — the resolved data directory, one
//! shared store connection, the [`JobRunner`], the dataset cache, and the saved name of each
//! open conversation saved by name. Opening them can fail (no home directory, a damaged
//! database); that error is kept and returned by the methods that need them, so the engine
//! still works.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use adapt_paths::{DataDir, Env};
use adapt_store::Store;

use crate::engine_thread::ChatId;
use crate::error::ApiError;
use crate::jobs::{lock, JobRunner, JobTiming, SharedStore};

/// How [`Adapt::start_with`] sets up the store and jobs.
#[derive(Debug, Clone, Default)]
pub struct AdaptConfig {
    /// The data directory; `None`: `ADAPT_DATA_DIR`, else the platform's per-user folder.
    pub data_dir: Option<PathBuf>,
    /// Where prepared datasets are cached; `None`: `ADAPT_CACHE_DIR`, else the platform's
    /// per-user cache folder.
    pub dataset_cache: Option<PathBuf>,
    pub job_timing: JobTiming,
    /// Where the engine computes; `None`: `ADAPT_DEVICE` (auto, gpu or cpu), else auto.
    pub device: Option<adapt_engine::DevicePreference>,
}

pub(crate) struct Records {
    pub env: Env,
    opened: Result<Opened, ApiError>,
    /// Where prepared datasets are cached (or why there is no such place).
    pub dataset_cache: Result<PathBuf, ApiError>,
    /// Open conversations saved by name: the name and the store's conversation id.
    named_chats: Mutex<HashMap<ChatId, (String, i64)>>,
    /// The stop flag of each reply being streamed, by conversation.
    replies: Mutex<HashMap<ChatId, Arc<AtomicBool>>>,
}

struct Opened {
    data: DataDir,
    store: SharedStore,
    jobs: JobRunner,
}

impl Records {
    pub(crate) fn open(config: AdaptConfig) -> Result<Records, ApiError> {
        let env = Env::current();
        let data = match config.data_dir {
            Some(dir) => Ok(DataDir::at(dir)),
            None => DataDir::resolve(&env).map_err(ApiError::from),
        };
        let opened = data.and_then(|data| {
            let store = Arc::new(Mutex::new(Store::open(&data.database())?));
            let jobs = JobRunner::new(store.clone(), config.job_timing)?;
            Ok(Opened { data, store, jobs })
        });
        if let Ok(opened) = &opened {
            // If the database stays busy now, the next listing of jobs tries again.
            let _ = opened.jobs.interrupt_dead();
        }
        let dataset_cache = match config.dataset_cache {
            Some(dir) => Ok(dir),
            None => adapt_paths::dataset_cache(&env).map_err(ApiError::from),
        };
        Ok(Records {
            env,
            opened,
            dataset_cache,
            named_chats: Mutex::default(),
            replies: Mutex::default(),
        })
    }

    fn get(&self) -> Result<&Opened, ApiError> {
        self.opened.as_ref().map_err(Clone::clone)
    }

    /// The data directory in use.
    pub fn data_dir(&self) -> Result<&DataDir, ApiError> {
        Ok(&self.get()?.data)
    }

    /// The store, locked for this thread.
    pub fn store(&self) -> Result<MutexGuard<'_, Store>, ApiError> {
        Ok(lock(&self.get()?.store))
    }

    pub fn job_runner(&self) -> Result<&JobRunner, ApiError> {
        Ok(&self.get()?.jobs)
    }

    /// The open conversations saved by name.
    pub fn named_chats(&self) -> MutexGuard<'_, HashMap<ChatId, (String, i64)>> {
        self.named_chats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The replies being streamed: each one's stop flag.
    pub fn replies(&self) -> MutexGuard<'_, HashMap<ChatId, Arc<AtomicBool>>> {
        self.replies.lock().unwrap_or_else(|e| e.into_inner())
    }
}
