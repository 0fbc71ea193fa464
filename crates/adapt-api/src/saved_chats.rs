//! Conversations saved by name with their KV cache and reopened — in this process or the next.
//!
//! A conversation saved by name is a store record (`conversations` + `messages`, kept in step
//! after every turn) plus its cache file in the data directory's `kv-caches/` (a `kv_caches`
//! row with its key, tokens and bytes). Closing a named conversation writes its cache again,
//! so the next `open_chat` continues without processing the history. Cache files are kept
//! within the disk budget, least recently used removed first; a conversation whose file was
//! removed still opens, and its history is processed again.

use std::path::{Path, PathBuf};

use adapt_engine::{ChatMessage, ChatOptions, ChatSession, LoadedModel};
use serde::Serialize;

use crate::adapt::Adapt;
use crate::budgets::{self, CacheBudgets, DISK_SETTING, MEMORY_SETTING};
use crate::chats::{no_chat, store_key};
use crate::engine_thread::{ChatId, EngineState};
use crate::error::{ApiError, ErrorCode};

/// A conversation saved to, or opened from, a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SavedChat {
    pub path: PathBuf,
    pub messages: usize,
    /// Tokens whose keys and values the file holds (0 when no cache could be used).
    pub cached_tokens: usize,
    pub bytes: u64,
    pub key: adapt_engine::CacheKey,
    /// Why the cache could not be used, when it could not.
    pub note: Option<String>,
}

/// A saved conversation, for listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SavedConversation {
    pub name: String,
    pub messages: usize,
    pub updated_at: i64,
    /// Its cache on disk: tokens and bytes (`None`: removed, the history is processed again).
    pub cache: Option<(u64, u64)>,
}

impl Adapt {
    /// Saves conversation `chat` — messages in the store, KV cache in mlx-lm's prompt-cache
    /// format in the data directory's `kv-caches/` — as `name`; it stays saved under that
    /// name (kept in step after every turn, its cache written again when it is closed).
    pub fn save_chat(&self, chat: ChatId, name: &str) -> Result<SavedChat, ApiError> {
        let path = self.chat_file(name)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ApiError::io("create", dir, e))?;
        }
        let file = path.clone();
        let saved = self
            .engine
            .call(move |state| save_on_engine(state, chat, file))?;
        let known = self.store()?.conversation_by_title(name)?.map(|c| c.id);
        self.keep_named(chat, name, known, &saved)?;
        self.keep_disk_budget(&path)?;
        Ok(saved)
    }

    /// Reopens the conversation saved as `name` with the loaded model; it continues from its
    /// cache without processing its history again (or, when the cache was removed or belongs
    /// to another model, adapter or template, processes it again and says why).
    pub fn open_chat(&self, name: &str) -> Result<(ChatId, SavedChat), ApiError> {
        let path = self.chat_file(name)?;
        let record = self.store()?.conversation_by_title(name)?;
        let messages = match &record {
            Some(c) => Some(
                self.store()?
                    .messages(c.id)?
                    .into_iter()
                    .map(|m| ChatMessage::new(m.role, m.content))
                    .collect::<Vec<_>>(),
            ),
            None if path.is_file() => None,
            None => {
                return Err(ApiError::new(
                    ErrorCode::ApiNoSavedChat,
                    format!(
                        "no conversation is saved as '{name}' (adapt chat, then /list shows \
                         the saved ones)"
                    ),
                ))
            }
        };
        let (chat, saved) = self
            .engine
            .call(move |state| open_on_engine(state, path, messages))?;
        self.keep_named(chat, name, record.map(|c| c.id), &saved)?;
        Ok((chat, saved))
    }

    /// Forgets conversation `chat` and frees its cache; a saved one has its cache written
    /// first (returned), so it reopens without processing its history.
    pub fn close_chat(&self, chat: ChatId) -> Result<Option<SavedChat>, ApiError> {
        let saved = self
            .engine
            .call(move |state| close_on_engine(state, chat))?;
        let named = self.records.named_chats().remove(&chat);
        if let (Some(saved), Some((_, conversation))) = (&saved, named) {
            self.record_cache(conversation, saved)?;
            self.keep_disk_budget(&saved.path)?;
        }
        Ok(saved)
    }

    /// Closes every conversation (a shell quitting): saved ones have their caches written, so
    /// they reopen without processing their history. Returns what was written.
    pub fn close_all_chats(&self) -> Result<Vec<SavedChat>, ApiError> {
        let ids = self.engine.call(|state| {
            Ok(state
                .chats
                .ids()
                .into_iter()
                .map(ChatId)
                .collect::<Vec<_>>())
        })?;
        let mut written = Vec::new();
        for chat in ids {
            written.extend(self.close_chat(chat)?);
        }
        Ok(written)
    }

    /// The saved conversations, most recently used first.
    pub fn list_chats(&self) -> Result<Vec<SavedConversation>, ApiError> {
        let store = self.store()?;
        let caches = store.kv_caches()?;
        store
            .conversations()?
            .into_iter()
            .map(|c| {
                let cache = caches
                    .iter()
                    .find(|k| k.conversation_id == Some(c.id) && k.file.is_file())
                    .map(|k| (k.n_tokens, k.bytes));
                Ok(SavedConversation {
                    messages: store.messages(c.id)?.len(),
                    name: c.title,
                    updated_at: c.updated_at,
                    cache,
                })
            })
            .collect()
    }

    /// The memory and disk budgets for KV caches (settings, or the defaults).
    pub fn cache_budgets(&self) -> CacheBudgets {
        budgets::read(&self.records)
    }

    /// Changes the budgets (kept as settings for later sessions) and applies them.
    pub fn set_cache_budgets(
        &self,
        memory: Option<u64>,
        disk: Option<u64>,
    ) -> Result<CacheBudgets, ApiError> {
        {
            let mut store = self.store()?;
            if let Some(m) = memory {
                store.set_setting(MEMORY_SETTING, &m.to_string())?;
            }
            if let Some(d) = disk {
                store.set_setting(DISK_SETTING, &d.to_string())?;
            }
        }
        let budgets = self.cache_budgets();
        budgets::apply_memory(&self.engine, budgets.memory)?;
        Ok(budgets)
    }

    /// Makes `chat` the conversation saved as `name` (the store's record `known`, or a new
    /// one), records its cache file and writes its messages.
    fn keep_named(
        &self,
        chat: ChatId,
        name: &str,
        known: Option<i64>,
        saved: &SavedChat,
    ) -> Result<(), ApiError> {
        let conversation = match known {
            Some(id) => id,
            None => {
                self.store()?
                    .create_conversation(name, None, None, None)?
                    .id
            }
        };
        self.record_cache(conversation, saved)?;
        self.records
            .named_chats()
            .insert(chat, (name.to_string(), conversation));
        self.sync(chat)
    }

    /// Records `saved`'s cache file for `conversation` (nothing when it holds no cache).
    fn record_cache(&self, conversation: i64, saved: &SavedChat) -> Result<(), ApiError> {
        if saved.cached_tokens > 0 {
            self.store()?.put_kv_cache(
                &store_key(&saved.key),
                Some(conversation),
                &saved.path,
                saved.cached_tokens as u64,
                saved.bytes,
            )?;
        }
        Ok(())
    }

    /// Removes cache files, least recently used first and never `keep`, until the saved
    /// caches fit the disk budget.
    pub(crate) fn keep_disk_budget(&self, keep: &Path) -> Result<(), ApiError> {
        let budget = self.cache_budgets().disk;
        let mut store = self.store()?;
        let caches = store.kv_caches()?;
        let mut total: u64 = caches.iter().map(|c| c.bytes).sum();
        for cache in caches {
            if total <= budget {
                break;
            }
            if cache.file == keep {
                continue;
            }
            let _ = std::fs::remove_file(&cache.file);
            store.remove_kv_cache(cache.id)?;
            total -= cache.bytes;
        }
        Ok(())
    }
}

fn saved(lm: &LoadedModel, session: &ChatSession, path: &Path, bytes: u64) -> SavedChat {
    SavedChat {
        path: path.to_path_buf(),
        messages: session.messages.len(),
        cached_tokens: session.cached_tokens(),
        bytes,
        key: session.key(lm),
        note: None,
    }
}

/// On the engine thread: writes `chat`'s cache to `path` and keeps it there from now on.
fn save_on_engine(
    state: &mut EngineState,
    chat: ChatId,
    path: PathBuf,
) -> Result<SavedChat, ApiError> {
    let EngineState { model, chats, .. } = state;
    let lm = model.as_ref().ok_or_else(ApiError::no_model)?;
    let session = chats.session(lm, chat.0).map_err(|_| no_chat())?;
    // An evicted or unused cache: the messages are kept, no file.
    let result = if session.cached_tokens() == 0 {
        let _ = std::fs::remove_file(&path);
        saved(lm, session, &path, 0)
    } else {
        let bytes = session.save(lm, &path)?;
        saved(lm, session, &path, bytes)
    };
    chats.set_file(chat.0, path);
    Ok(result)
}

/// On the engine thread: reopens a saved conversation from `path`. With the stored `messages`
/// at hand they are the conversation (the cache then serves the prefix they share with it),
/// and a cache that cannot be used (missing, or saved under another key) leaves an empty one
/// and says why.
fn open_on_engine(
    state: &mut EngineState,
    path: PathBuf,
    messages: Option<Vec<ChatMessage>>,
) -> Result<(ChatId, SavedChat), ApiError> {
    let lm = state.loaded()?;
    let (session, bytes, note) = match (ChatSession::open(lm, &path), messages) {
        (Ok(mut session), stored) => {
            if let Some(stored) = stored {
                session.replace_messages(stored);
            }
            let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            (session, bytes, None)
        }
        (Err(e), None) => return Err(e.into()),
        (Err(e), Some(stored)) => {
            let session = ChatSession::with_messages(lm, stored, ChatOptions::default())?;
            let why = if path.is_file() {
                e.to_string()
            } else {
                "its cache was removed to keep within the disk budget".into()
            };
            let note = format!("{why}; the history will be processed again");
            (session, 0, Some(note))
        }
    };
    let mut info = saved(lm, &session, &path, bytes);
    info.note = note;
    Ok((ChatId(state.chats.insert(session, Some(path))), info))
}

/// On the engine thread: forgets `chat`; one kept on disk is saved first (its record is
/// returned).
fn close_on_engine(state: &mut EngineState, chat: ChatId) -> Result<Option<SavedChat>, ApiError> {
    let EngineState { model, chats, .. } = state;
    let file = chats.file(chat.0).map(Path::to_path_buf);
    let write = || -> Result<Option<SavedChat>, ApiError> {
        let (Some(lm), Some(file)) = (model.as_ref(), file) else {
            return Ok(None);
        };
        if chats.is_evicted(chat.0) {
            return Ok(None);
        }
        let session = chats.get(chat.0).ok_or_else(no_chat)?;
        if session.cached_tokens() == 0 {
            return Ok(None);
        }
        let bytes = session.save(lm, &file)?;
        Ok(Some(saved(lm, session, &file, bytes)))
    };
    let result = write();
    chats.remove(chat.0);
    result
}
