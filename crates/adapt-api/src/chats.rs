//! Conversations: started, continued (say, regenerate, edit), forked, saved by name with their
//! KV cache and reopened — in this process or the next.
//!
//! The engine thread holds the conversations and their caches (within the memory budget). A
//! conversation saved by name is a store record (`conversations` + `messages`, kept in step
//! after every turn) plus its cache file in the data directory's `kv-caches/` (a `kv_caches`
//! row with its key, tokens and bytes). Closing a named conversation writes its cache again,
//! so the next `open_chat` continues without processing the history. Cache files are kept
//! within the disk budget, least recently used removed first; a conversation whose file was
//! removed still opens, and its history is processed again.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine_thread::{Request, Turn};
use crate::{Adapt, ApiError, ChatId, GenerationEvent};
use adapt_engine::{CacheKey, ChatMessage, ChatOptions, GenerateParams, Generation};

/// The setting holding the memory budget for KV caches, in bytes.
const MEMORY_BUDGET_SETTING: &str = "kv_cache_memory_budget";
/// The setting holding the disk budget for saved KV caches, in bytes.
const DISK_BUDGET_SETTING: &str = "kv_cache_disk_budget";
/// Default memory budget: 4 GiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 4 << 30;
/// Default disk budget: 20 GiB.
pub const DEFAULT_DISK_BUDGET: u64 = 20 << 30;

/// Where a conversation stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ChatState {
    /// The name it is saved under.
    pub name: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub turns: usize,
    /// Tokens whose keys and values are in memory.
    pub cached_tokens: usize,
    pub cache_bytes: u64,
    /// Its cache left memory to keep within the budget (the next turn reloads it).
    pub evicted: bool,
    /// Bytes of its cache file, when saved.
    pub disk_bytes: Option<u64>,
    pub kv_bits: Option<i32>,
    /// Messages the model no longer sees because the context is full.
    pub left_out_messages: usize,
    /// Bytes of every conversation's cache and the shared openings, in memory.
    pub all_caches_bytes: u64,
    /// Shared openings kept.
    pub prefixes: usize,
}

/// A conversation saved to, or opened from, a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SavedChat {
    pub path: PathBuf,
    pub messages: usize,
    /// Tokens whose keys and values the file holds (0 when no cache could be used).
    pub cached_tokens: usize,
    pub bytes: u64,
    pub key: CacheKey,
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

/// How much room KV caches get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheBudgets {
    pub memory: u64,
    pub disk: u64,
}

impl Adapt {
    /// Starts a conversation with the loaded model.
    pub fn new_chat(&self, system: Option<&str>) -> Result<ChatId, ApiError> {
        let messages = system
            .map(|s| vec![ChatMessage::new("system", s)])
            .unwrap_or_default();
        self.new_chat_with(messages, ChatOptions::default())
    }

    /// Starts a conversation that already has `messages` (its first turn processes them),
    /// with `options` (template options, KV-cache bits, overflow policy).
    pub fn new_chat_with(
        &self,
        messages: Vec<ChatMessage>,
        options: ChatOptions,
    ) -> Result<ChatId, ApiError> {
        self.call(|reply| Request::NewChat {
            messages,
            options,
            adapter: None,
            reply,
        })
    }

    /// Starts a conversation like [`Adapt::new_chat_with`] that talks to `adapter` (a folder;
    /// `None`: the base model) on the loaded base weights, whatever adapter the model was
    /// loaded with: conversations with different adapters run side by side, each turn with
    /// its own adapter attached (an A/B comparison).
    pub fn new_chat_on(
        &self,
        messages: Vec<ChatMessage>,
        options: ChatOptions,
        adapter: Option<PathBuf>,
    ) -> Result<ChatId, ApiError> {
        self.call(|reply| Request::NewChat {
            messages,
            options,
            adapter: Some(adapter),
            reply,
        })
    }

    /// Sends the user's `message` in conversation `chat` and streams the reply.
    pub fn chat(
        &self,
        chat: ChatId,
        message: &str,
        params: &GenerateParams,
        on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<Generation, ApiError> {
        self.turn(chat, Turn::Say(message.to_string()), params, on_event)
    }

    /// Replaces the last reply of `chat` with a new one.
    pub fn regenerate(
        &self,
        chat: ChatId,
        params: &GenerateParams,
        on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<Generation, ApiError> {
        self.turn(chat, Turn::Regenerate, params, on_event)
    }

    /// Replaces user message `index` of `chat` with `content`, drops the messages after it and
    /// streams a new reply; the cache keeps the longest prefix still valid.
    pub fn edit_message(
        &self,
        chat: ChatId,
        index: usize,
        content: &str,
        params: &GenerateParams,
        on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<Generation, ApiError> {
        let content = content.to_string();
        self.turn(chat, Turn::Edit { index, content }, params, on_event)
    }

    fn turn(
        &self,
        chat: ChatId,
        turn: Turn,
        params: &GenerateParams,
        on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<Generation, ApiError> {
        let params = params.clone();
        let generation = self.stream(
            |events, cancel, reply| Request::Chat {
                chat,
                turn,
                params,
                events,
                cancel,
                reply,
            },
            on_event,
        )?;
        self.sync(chat)?;
        Ok(generation)
    }

    /// A new conversation with `chat`'s first `turns` turns, starting from its cache.
    pub fn fork_chat(&self, chat: ChatId, turns: usize) -> Result<ChatId, ApiError> {
        self.call(|reply| Request::ForkChat { chat, turns, reply })
    }

    /// Sets (or removes) `chat`'s system message; the next turn reuses the cache only as far
    /// as the conversation's rendering is unchanged.
    pub fn set_system(&self, chat: ChatId, system: Option<&str>) -> Result<(), ApiError> {
        let system = system.map(str::to_string);
        self.call(|reply| Request::SetSystem {
            chat,
            system,
            reply,
        })?;
        self.sync(chat)
    }

    /// Where `chat` stands: its messages, cache in memory and on disk.
    pub fn chat_state(&self, chat: ChatId) -> Result<ChatState, ApiError> {
        let mut state = self.call(|reply| Request::ChatState { chat, reply })?;
        if let Some((name, _)) = self.named(chat) {
            state.disk_bytes = self
                .chat_file(&name)
                .ok()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.len());
            state.name = Some(name);
        }
        Ok(state)
    }

    /// Saves conversation `chat` — messages in the store, KV cache in mlx-lm's prompt-cache
    /// format in the data directory's `kv-caches/` — as `name`; it stays saved under that
    /// name (kept in step after every turn, its cache written again when it is closed).
    pub fn save_chat(&self, chat: ChatId, name: &str) -> Result<SavedChat, ApiError> {
        let path = self.chat_file(name)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                ApiError::new("api.io", format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let saved = self.call(|reply| Request::SaveChat {
            chat,
            path: path.clone(),
            reply,
        })?;
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
                    "api.no_saved_chat",
                    format!(
                        "no conversation is saved as '{name}' (adapt chat, then /list shows \
                         the saved ones)"
                    ),
                ))
            }
        };
        let (chat, saved) = self.call(|reply| Request::OpenChat {
            path: path.clone(),
            messages,
            reply,
        })?;
        self.keep_named(chat, name, record.map(|c| c.id), &saved)?;
        Ok((chat, saved))
    }

    /// Forgets conversation `chat` and frees its cache; a saved one has its cache written
    /// first (returned), so it reopens without processing its history.
    pub fn close_chat(&self, chat: ChatId) -> Result<Option<SavedChat>, ApiError> {
        let saved = self.call(|reply| Request::CloseChat { chat, reply })?;
        let named = self.names().remove(&chat);
        if let (Some(saved), Some((_, conversation))) = (&saved, named) {
            self.record_cache(conversation, saved)?;
            self.keep_disk_budget(&saved.path)?;
        }
        Ok(saved)
    }

    /// Closes every conversation (a shell quitting): saved ones have their caches written, so
    /// they reopen without processing their history. Returns what was written.
    pub fn close_all_chats(&self) -> Result<Vec<SavedChat>, ApiError> {
        let ids = self.call(|reply| Request::ChatIds { reply })?;
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
        let setting = |key: &str, default: u64| {
            self.store()
                .ok()
                .and_then(|s| s.setting(key).ok().flatten())
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        CacheBudgets {
            memory: setting(MEMORY_BUDGET_SETTING, DEFAULT_MEMORY_BUDGET),
            disk: setting(DISK_BUDGET_SETTING, DEFAULT_DISK_BUDGET),
        }
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
                store.set_setting(MEMORY_BUDGET_SETTING, &m.to_string())?;
            }
            if let Some(d) = disk {
                store.set_setting(DISK_BUDGET_SETTING, &d.to_string())?;
            }
        }
        let budgets = self.cache_budgets();
        self.apply_memory_budget(budgets.memory)?;
        Ok(budgets)
    }

    pub(crate) fn apply_memory_budget(&self, bytes: u64) -> Result<(), ApiError> {
        self.sender()?
            .send(Request::MemoryBudget {
                bytes: Some(bytes as usize),
            })
            .map_err(|_| ApiError::engine_gone())
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
        self.names().insert(chat, (name.to_string(), conversation));
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
    fn keep_disk_budget(&self, keep: &Path) -> Result<(), ApiError> {
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

    /// Writes a named conversation's messages to the store.
    fn sync(&self, chat: ChatId) -> Result<(), ApiError> {
        let Some((_, conversation)) = self.named(chat) else {
            return Ok(());
        };
        let state = self.call(|reply| Request::ChatState { chat, reply })?;
        let messages: Vec<(&str, &str)> = state
            .messages
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        self.store()?.set_messages(conversation, &messages)?;
        Ok(())
    }

    fn named(&self, chat: ChatId) -> Option<(String, i64)> {
        self.names().get(&chat).cloned()
    }

    fn names(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<ChatId, (String, i64)>> {
        self.named_chats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn chat_file(&self, name: &str) -> Result<PathBuf, ApiError> {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if !ok {
            return Err(ApiError::new(
                "api.bad_name",
                format!("'{name}' is not a usable name: use letters, digits, '-', '_' and '.'"),
            ));
        }
        Ok(self
            .data_dir()?
            .kv_caches()
            .join(format!("{name}.safetensors")))
    }
}

fn store_key(key: &CacheKey) -> adapt_store::CacheKey {
    adapt_store::CacheKey {
        model: key.model.clone(),
        adapter: key.adapter.clone(),
        template: key.template.clone(),
    }
}
