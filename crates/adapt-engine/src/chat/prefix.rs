//! Shared prefixes across conversations: a trie of token ids per [`CacheKey`] whose paths end
//! in kept KV caches. Conversations record their opening (system message and template
//! preamble) after their first turn; a new conversation with the same key and the same
//! opening starts from a clone of that cache instead of prefilling it. Keys and values at a
//! position depend only on the tokens up to it, so any node on a kept path is a valid starting
//! point for a prompt that reaches it.

use std::collections::HashMap;

use mlx_rs::ops::indexing::IndexOp;
use mlx_rs::Array;

use super::CacheKey;
use crate::cache::KvCache;
use crate::error::{EngineError, Result};
use crate::generate::SequenceCache;

/// Kept prefixes, looked up by longest match.
#[derive(Debug, Default)]
pub struct PrefixTrie {
    roots: HashMap<CacheKey, Node>,
    kept: HashMap<u64, Kept>,
    next: u64,
    clock: u64,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<u32, Node>,
    /// A kept cache whose tokens pass through this node.
    kept: Option<u64>,
}

#[derive(Debug)]
struct Kept {
    key: CacheKey,
    cache: SequenceCache,
    last_used: u64,
}

impl PrefixTrie {
    pub fn new() -> PrefixTrie {
        PrefixTrie::default()
    }

    /// Keeps a copy of the first `len` positions of `cache` for conversations under `key`,
    /// unless a kept prefix already covers them.
    pub fn insert(&mut self, key: &CacheKey, cache: &SequenceCache, len: usize) -> Result<()> {
        let len = len.min(cache.tokens.len());
        if len == 0 {
            return Ok(());
        }
        self.clock += 1;
        let tokens = &cache.tokens[..len];
        if let Some((depth, id)) = self.deepest(key, tokens) {
            if depth == len {
                self.touch(id);
                return Ok(());
            }
        }
        let copy = copy_prefix(cache, len)?;
        let id = self.next;
        self.next += 1;
        self.link(key, tokens, id);
        self.kept.insert(
            id,
            Kept {
                key: key.clone(),
                cache: copy,
                last_used: self.clock,
            },
        );
        Ok(())
    }

    /// The longest kept prefix of `prompt` under `key`, as a cache of its own (sharing storage
    /// copy-on-write with the kept one).
    pub fn lookup(&mut self, key: &CacheKey, prompt: &[u32]) -> Option<SequenceCache> {
        let (depth, id) = self.deepest(key, prompt)?;
        self.clock += 1;
        self.touch(id);
        let mut cache = self.kept[&id].cache.clone();
        cache.truncate(depth);
        Some(cache)
    }

    /// Number of kept prefixes.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Bytes of the kept caches.
    pub fn nbytes(&self) -> usize {
        self.kept.values().map(|k| k.cache.nbytes()).sum()
    }

    /// Forgets the least recently used prefix; returns the bytes freed (`None`: none kept).
    pub fn evict_oldest(&mut self) -> Option<usize> {
        let (&id, _) = self.kept.iter().min_by_key(|(_, k)| k.last_used)?;
        self.forget(id).map(|gone| gone.nbytes())
    }

    /// Keeps `cache` itself (no copy) for prompts under `key` that start with its tokens, and
    /// forgets the kept caches it covers (those whose tokens it starts with): a conversation
    /// resent with one more turn replaces its previous cache.
    pub fn keep(&mut self, key: &CacheKey, cache: SequenceCache) {
        if cache.tokens.is_empty() {
            return;
        }
        self.clock += 1;
        let covered: Vec<u64> = self
            .kept
            .iter()
            .filter(|(_, k)| &k.key == key && cache.tokens.starts_with(&k.cache.tokens))
            .map(|(&id, _)| id)
            .collect();
        for id in covered {
            self.forget(id);
        }
        let id = self.next;
        self.next += 1;
        self.link(key, &cache.tokens, id);
        self.kept.insert(
            id,
            Kept {
                key: key.clone(),
                cache,
                last_used: self.clock,
            },
        );
    }

    /// The kept caches with their keys, most recently used first.
    pub fn entries(&self) -> Vec<(&CacheKey, &SequenceCache)> {
        let mut kept: Vec<&Kept> = self.kept.values().collect();
        kept.sort_by_key(|k| std::cmp::Reverse(k.last_used));
        kept.into_iter().map(|k| (&k.key, &k.cache)).collect()
    }

    /// Removes kept cache `id` and rebuilds its key's paths from what is left.
    fn forget(&mut self, id: u64) -> Option<SequenceCache> {
        let gone = self.kept.remove(&id)?;
        self.roots.remove(&gone.key);
        let left: Vec<(u64, Vec<u32>)> = self
            .kept
            .iter()
            .filter(|(_, k)| k.key == gone.key)
            .map(|(&i, k)| (i, k.cache.tokens.clone()))
            .collect();
        for (i, tokens) in left {
            self.link(&gone.key, &tokens, i);
        }
        Some(gone.cache)
    }

    fn touch(&mut self, id: u64) {
        if let Some(k) = self.kept.get_mut(&id) {
            k.last_used = self.clock;
        }
    }

    fn link(&mut self, key: &CacheKey, tokens: &[u32], id: u64) {
        let mut node = self.roots.entry(key.clone()).or_default();
        for t in tokens {
            node = node.children.entry(*t).or_default();
            node.kept = Some(id);
        }
    }

    /// How far `tokens` follow a kept path, and the kept cache there.
    fn deepest(&self, key: &CacheKey, tokens: &[u32]) -> Option<(usize, u64)> {
        let mut node = self.roots.get(key)?;
        let mut best = None;
        for (depth, t) in tokens.iter().enumerate() {
            let Some(next) = node.children.get(t) else {
                break;
            };
            node = next;
            if let Some(id) = node.kept {
                best = Some((depth + 1, id));
            }
        }
        best
    }
}

/// The first `len` positions of `cache`, copied so the copy does not hold on to the rest.
fn copy_prefix(cache: &SequenceCache, len: usize) -> Result<SequenceCache> {
    let end = len as i32;
    let mut layers = Vec::with_capacity(cache.layers.len());
    for layer in &cache.layers {
        let (keys, values) = layer.parts().ok_or_else(|| {
            EngineError::InvalidRequest("an empty cache has no prefix to keep".into())
        })?;
        let copy = |xs: Vec<Array>| -> Result<Vec<Array>> {
            xs.iter()
                .map(|x| Ok(x.index((.., .., ..end, ..)).contiguous()?))
                .collect()
        };
        layers.push(KvCache::from_parts(
            copy(keys)?,
            copy(values)?,
            len,
            layer.quant(),
        ));
    }
    let copy = SequenceCache {
        tokens: cache.tokens[..len].to_vec(),
        layers,
    };
    copy.eval()?;
    Ok(copy)
}
