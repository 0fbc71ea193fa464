//! The conversations of one process, held within a memory budget.
//!
//! Each conversation owns its session and cache; the pool only decides which caches stay in
//! memory. After every turn, while the caches (and the kept prefixes) exceed the budget, the
//! least recently used conversation other than the one just used gives up its cache — written
//! to its file first when it has one (a saved conversation), so its next turn reloads it
//! instead of prefilling the history again — and then the oldest kept prefixes go.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{ChatSession, PrefixTrie};
use crate::error::{EngineError, Result};
use crate::generate::Generation;
use crate::load::LoadedModel;

/// Conversations by id, their caches within a memory budget.
#[derive(Debug, Default)]
pub struct ChatPool {
    held: HashMap<u64, Held>,
    next: u64,
    clock: u64,
    /// Openings shared across conversations.
    pub prefixes: PrefixTrie,
    budget: Option<usize>,
}

#[derive(Debug)]
struct Held {
    session: ChatSession,
    /// Where the conversation's cache is kept on disk.
    file: Option<PathBuf>,
    /// Its cache left memory (and, with a file, was written there first).
    evicted: bool,
    last_used: u64,
}

/// A conversation whose cache left memory to keep within the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Evicted {
    pub id: u64,
    /// Bytes freed.
    pub bytes: usize,
    /// The file its cache was written to, and that file's size.
    pub saved: Option<(PathBuf, u64)>,
}

impl ChatPool {
    pub fn new() -> ChatPool {
        ChatPool::default()
    }

    /// Most bytes of KV caches to keep in memory (`None`: no limit).
    pub fn set_memory_budget(&mut self, bytes: Option<usize>) {
        self.budget = bytes;
    }

    /// Adds a conversation; `file` is where its cache is kept on disk, if anywhere.
    pub fn insert(&mut self, session: ChatSession, file: Option<PathBuf>) -> u64 {
        self.next += 1;
        self.clock += 1;
        self.held.insert(
            self.next,
            Held {
                session,
                file,
                evicted: false,
                last_used: self.clock,
            },
        );
        self.next
    }

    /// The conversation `id`, as it is (its cache may have been evicted).
    pub fn get(&self, id: u64) -> Option<&ChatSession> {
        self.held.get(&id).map(|h| &h.session)
    }

    /// Whether conversation `id`'s cache is out of memory.
    pub fn is_evicted(&self, id: u64) -> bool {
        self.held.get(&id).is_some_and(|h| h.evicted)
    }

    /// Where conversation `id`'s cache is kept on disk.
    pub fn file(&self, id: u64) -> Option<&Path> {
        self.held.get(&id)?.file.as_deref()
    }

    pub fn set_file(&mut self, id: u64, file: PathBuf) {
        if let Some(h) = self.held.get_mut(&id) {
            h.file = Some(file);
        }
    }

    pub fn remove(&mut self, id: u64) -> Option<ChatSession> {
        self.held.remove(&id).map(|h| h.session)
    }

    /// Forgets every conversation and kept prefix (the model changed).
    pub fn clear(&mut self) {
        self.held.clear();
        self.prefixes = PrefixTrie::new();
    }

    /// Ids of the conversations held.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.held.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Bytes of the caches in memory, conversations' and kept prefixes'.
    pub fn nbytes(&self) -> usize {
        self.held
            .values()
            .map(|h| h.session.cache_nbytes())
            .sum::<usize>()
            + self.prefixes.nbytes()
    }

    /// Conversation `id` with its cache in memory (reloaded from its file after an eviction;
    /// when that fails the cache starts empty and the next turn prefills the history).
    pub fn session(&mut self, lm: &LoadedModel, id: u64) -> Result<&mut ChatSession> {
        self.clock += 1;
        let held = self.held.get_mut(&id).ok_or_else(no_conversation)?;
        held.last_used = self.clock;
        if held.evicted {
            held.evicted = false;
            if let Some(file) = held.file.as_deref().filter(|f| f.is_file()) {
                if held.session.restore_cache(lm, file).is_err() {
                    held.session.drop_caches();
                }
            }
        }
        Ok(&mut held.session)
    }

    /// Runs one turn of conversation `id` with the shared prefixes at hand, then keeps the
    /// caches within the budget.
    pub fn turn(
        &mut self,
        lm: &LoadedModel,
        id: u64,
        run: impl FnOnce(&mut ChatSession, &mut PrefixTrie) -> Result<Generation>,
    ) -> Result<(Generation, Vec<Evicted>)> {
        self.session(lm, id)?;
        let held = self.held.get_mut(&id).ok_or_else(no_conversation)?;
        let generation = run(&mut held.session, &mut self.prefixes)?;
        let evicted = self.enforce(lm, id)?;
        Ok((generation, evicted))
    }

    /// Evicts caches, least recently used first and never `keep`'s, until within the budget.
    pub fn enforce(&mut self, lm: &LoadedModel, keep: u64) -> Result<Vec<Evicted>> {
        let mut evicted = Vec::new();
        let Some(budget) = self.budget else {
            return Ok(evicted);
        };
        while self.nbytes() > budget {
            let oldest = self
                .held
                .iter()
                .filter(|(&id, h)| id != keep && h.session.cache_nbytes() > 0)
                .min_by_key(|(_, h)| h.last_used)
                .map(|(&id, _)| id);
            let Some(id) = oldest else {
                if self.prefixes.evict_oldest().is_none() {
                    break;
                }
                continue;
            };
            let held = self.held.get_mut(&id).expect("found above");
            let saved = match &held.file {
                Some(file) if held.session.cached_tokens() > 0 => {
                    let bytes = held.session.save(lm, file)?;
                    Some((file.clone(), bytes))
                }
                _ => None,
            };
            let bytes = held.session.cache_nbytes();
            held.session.drop_caches();
            held.evicted = true;
            evicted.push(Evicted { id, bytes, saved });
        }
        Ok(evicted)
    }
}

fn no_conversation() -> EngineError {
    EngineError::InvalidRequest(
        "that conversation does not exist (it was closed, or the model changed)".into(),
    )
}
