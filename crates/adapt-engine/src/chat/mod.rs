//! Conversations that keep their KV cache.
//!
//! A [`ChatSession`] holds the messages and the [`SequenceCache`] of the tokens the model has
//! seen. Each turn renders the conversation with the model's chat template and tokenizes it;
//! [`generate`] then reuses the cached prefix, so only the new turn's tokens are prefilled.
//! Editing or regenerating a turn, changing the system message or leaving old turns out to
//! fit the context changes the rendering; the cache is then trimmed to the longest prefix that
//! still matches — never reused stale. A session owns its cache: two sessions never share
//! mutable state (a fork or a shared prefix starts from a copy-on-write clone).
//!
//! [`PrefixTrie`] keeps the opening of conversations (system message and template preamble)
//! across sessions; [`ChatPool`] holds the sessions of a process within a memory budget.

mod pool;
mod prefix;
mod topics;

pub use pool::{ChatPool, Evicted};
pub use prefix::PrefixTrie;
pub use topics::{
    Embedder, Routed, Routing, Topic, TopicChoice, TopicSettings, TopicSimilarity, Topics,
    DEFAULT_THRESHOLD,
};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use adapt_text::ChatMessage;
use serde::{Deserialize, Serialize};

use crate::cache::{KvCache, KvQuant};
use crate::error::{EngineError, Result};
use crate::generate::{
    common_prefix, generate, GenerateParams, Generation, SequenceCache, TokenSink,
};
use crate::load::LoadedModel;

/// How a conversation talks to the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct ChatOptions {
    /// Extra chat-template variables, a JSON object (e.g. `{"enable_thinking": false}`).
    pub template_options: serde_json::Value,
    /// Keep the KV cache in 8 or 4 bits (`None`: as computed).
    pub kv_bits: Option<i32>,
    /// What happens when the conversation outgrows the model's context.
    pub overflow: Overflow,
}

/// The policy when a conversation no longer fits the model's context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Leave the oldest turns (never the system message) out of the model's view until the
    /// prompt and room for the reply fit; they stay in the conversation and the turn's stats
    /// say how many messages were left out.
    #[default]
    DropOldest,
    /// Refuse the turn with an error saying to start a new conversation or fork.
    Refuse,
}

/// What a conversation's cache is valid for: the weights (and how the cache stores them), the
/// adapter, and the chat template with its options. A cache is only ever reused under an
/// equal key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CacheKey {
    pub model: String,
    /// Empty for none.
    pub adapter: String,
    pub template: String,
}

/// An attached adapter: its folder and the fingerprint of its files.
pub type AdapterRef = (PathBuf, String);

impl CacheKey {
    /// The key of conversations with `lm`, as loaded, under `options`.
    pub fn new(lm: &LoadedModel, options: &ChatOptions) -> CacheKey {
        CacheKey::with_adapter(lm, lm.info.adapter.as_ref(), options)
    }

    /// The key of conversations with `lm`'s weights and `adapter` under `options`.
    pub fn with_adapter(
        lm: &LoadedModel,
        adapter: Option<&AdapterRef>,
        options: &ChatOptions,
    ) -> CacheKey {
        let template = lm.tokenizer.chat_template().unwrap_or("");
        let kv = options
            .kv_bits
            .map(|b| format!(" · kv {b}-bit"))
            .unwrap_or_default();
        CacheKey {
            model: format!(
                "{} · {} params{kv}",
                lm.info.path.display(),
                lm.info.n_params
            ),
            adapter: adapter
                .map(|(_, fingerprint)| fingerprint.clone())
                .unwrap_or_default(),
            template: format!(
                "{:016x} · {}",
                fnv1a(template.as_bytes()),
                options.template_options
            ),
        }
    }

    fn text(&self) -> String {
        serde_json::to_string(self).expect("strings serialize")
    }
}

/// FNV-1a: stable across runs and builds.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One conversation with its cache.
#[derive(Debug, Clone)]
pub struct ChatSession {
    pub messages: Vec<ChatMessage>,
    pub cache: SequenceCache,
    pub options: ChatOptions,
    /// Messages after the system message that the model no longer sees (context overflow).
    pub left_out: usize,
    /// The adapter this conversation talks to (none: the base model). Its turns run with it
    /// attached; its cache belongs to it.
    pub adapter: Option<AdapterRef>,
    /// Its topics, when it keeps them: each topic's turns in their own cache (then `cache`
    /// stays empty).
    pub topics: Option<Topics>,
}

impl ChatSession {
    /// A new conversation, optionally opening with a system message.
    pub fn new(lm: &LoadedModel, system: Option<&str>, options: ChatOptions) -> Result<Self> {
        let messages = system
            .map(|s| vec![ChatMessage::new("system", s)])
            .unwrap_or_default();
        ChatSession::with_messages(lm, messages, options)
    }

    /// A conversation that already has `messages`; its first turn processes them.
    pub fn with_messages(
        lm: &LoadedModel,
        messages: Vec<ChatMessage>,
        options: ChatOptions,
    ) -> Result<Self> {
        let quant = kv_quant(lm, &options)?;
        Ok(ChatSession {
            messages,
            cache: SequenceCache {
                tokens: Vec::new(),
                layers: KvCache::for_layers(lm.model.n_layers(), quant),
            },
            options,
            left_out: 0,
            adapter: lm.info.adapter.clone(),
            topics: None,
        })
    }

    /// What this conversation's cache is valid for.
    pub fn key(&self, lm: &LoadedModel) -> CacheKey {
        CacheKey::with_adapter(lm, self.adapter.as_ref(), &self.options)
    }

    /// Talks to `adapter` (none: the base model) instead; only before the first turn, while
    /// the cache is empty.
    pub fn set_adapter(&mut self, adapter: Option<AdapterRef>) -> Result<()> {
        if self.cached_tokens() > 0 {
            return Err(EngineError::InvalidRequest(
                "a conversation keeps the adapter it started with; start a new one".into(),
            ));
        }
        self.adapter = adapter;
        Ok(())
    }

    /// Adds the user's message, generates the assistant's reply and adds it too. On an error
    /// the conversation is left as it was.
    pub fn respond(
        &mut self,
        lm: &LoadedModel,
        user: &str,
        params: &GenerateParams,
        sink: &mut dyn TokenSink,
        shared: Option<&mut PrefixTrie>,
    ) -> Result<Generation> {
        if self.topics.is_some() {
            let routed = self.route(lm, user, TopicChoice::Auto)?;
            return self.respond_routed(lm, user, routed, params, sink, shared);
        }
        self.messages.push(ChatMessage::new("user", user));
        let result = self.reply(lm, params, sink, shared);
        if result.is_err() {
            self.messages.pop();
        }
        result
    }

    /// Replaces the last reply with a new one; the cache keeps everything before it.
    pub fn regenerate(
        &mut self,
        lm: &LoadedModel,
        params: &GenerateParams,
        sink: &mut dyn TokenSink,
    ) -> Result<Generation> {
        if self.messages.last().map(|m| m.role.as_str()) != Some("assistant") {
            return Err(EngineError::InvalidRequest(
                "there is no reply to regenerate yet".into(),
            ));
        }
        if self.topics.is_some() {
            return self.regenerate_in_topic(lm, params, sink);
        }
        let last = self.messages.pop().expect("checked above");
        self.reply(lm, params, sink, None).inspect_err(|_| {
            self.messages.push(last);
        })
    }

    /// Replaces message `index` (a user message) with `content`, drops everything after it and
    /// generates a new reply; the cache keeps the longest prefix still valid.
    pub fn edit(
        &mut self,
        lm: &LoadedModel,
        index: usize,
        content: &str,
        params: &GenerateParams,
        sink: &mut dyn TokenSink,
    ) -> Result<Generation> {
        if self.messages.get(index).map(|m| m.role.as_str()) != Some("user") {
            return Err(EngineError::InvalidRequest(format!(
                "message {index} is not a user message of this conversation ({} messages)",
                self.messages.len()
            )));
        }
        if self.topics.is_some() {
            return self.edit_in_topic(lm, index, content, params, sink);
        }
        let before = self.messages.clone();
        self.messages.truncate(index);
        self.messages.push(ChatMessage::new("user", content));
        self.reply(lm, params, sink, None).inspect_err(|_| {
            self.messages = before;
        })
    }

    /// Sets (or, with `None`, removes) the system message. The next turn reuses the cache only
    /// as far as the rendering is unchanged.
    pub fn set_system(&mut self, system: Option<&str>) {
        if self.messages.first().is_some_and(|m| m.role == "system") {
            self.messages.remove(0);
            if let Some(topics) = self.topics.as_mut() {
                topics.remove_message(0);
            }
        }
        if let Some(text) = system {
            self.messages.insert(0, ChatMessage::new("system", text));
            if let Some(topics) = self.topics.as_mut() {
                topics.insert_system();
            }
        }
    }

    /// Tokens of this conversation's caches (all its topics').
    pub fn cached_tokens(&self) -> usize {
        self.cache.tokens.len() + self.topics.as_ref().map_or(0, Topics::cached_tokens)
    }

    /// Bytes of this conversation's caches in memory (all its topics').
    pub fn cache_nbytes(&self) -> usize {
        self.cache.nbytes() + self.topics.as_ref().map_or(0, Topics::nbytes)
    }

    /// Lets every cache of this conversation go (the next turn prefills again, or reloads a
    /// saved file).
    pub fn drop_caches(&mut self) {
        self.cache = self.cache.empty_like();
        if let Some(topics) = self.topics.as_mut() {
            topics
                .topics
                .iter_mut()
                .for_each(|t| t.cache = t.cache.empty_like());
        }
    }

    /// The number of completed turns (replies).
    pub fn turns(&self) -> usize {
        self.messages
            .iter()
            .filter(|m| m.role == "assistant")
            .count()
    }

    /// A new conversation holding this one's first `turns` turns (and its system message),
    /// starting from this one's cache up to that point.
    pub fn fork(&self, lm: &LoadedModel, turns: usize) -> Result<ChatSession> {
        if turns > self.turns() {
            return Err(EngineError::InvalidRequest(format!(
                "cannot fork at turn {turns}: the conversation has {} turns",
                self.turns()
            )));
        }
        let end = match turns {
            0 => self
                .messages
                .iter()
                .take_while(|m| m.role == "system")
                .count(),
            n => self
                .messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m.role == "assistant")
                .nth(n - 1)
                .map_or(self.messages.len(), |(i, _)| i + 1),
        };
        if self.topics.is_some() {
            let mut fork = self.clone();
            fork.truncate_topics(lm, end, None)?;
            return Ok(fork);
        }
        let messages = self.messages[..end].to_vec();
        let mut cache = self.cache.clone();
        let rendered = prompt_tokens_with(lm, &messages, &self.options.template_options)?;
        cache.truncate(common_prefix(&cache.tokens, &rendered));
        Ok(ChatSession {
            messages,
            cache,
            options: self.options.clone(),
            left_out: 0,
            adapter: self.adapter.clone(),
            topics: None,
        })
    }

    /// Generates the reply to a conversation that ends with a user message.
    fn reply(
        &mut self,
        lm: &LoadedModel,
        params: &GenerateParams,
        sink: &mut dyn TokenSink,
        shared: Option<&mut PrefixTrie>,
    ) -> Result<Generation> {
        let key = self.key(lm);
        let prompt = self.fit(lm, params)?;
        let mut shared = shared;
        // A conversation's opening is looked up and kept when it starts from an empty cache
        // (its first turn, or after its cache left memory); later turns extend their own.
        let fresh = self.cache.tokens.is_empty();
        if fresh {
            if let Some(seed) = shared.as_deref_mut().and_then(|t| t.lookup(&key, &prompt)) {
                self.cache = seed;
            }
        }
        let mut generation = generate(
            &lm.model,
            &lm.tokenizer,
            &mut self.cache,
            &prompt,
            params,
            sink,
        )?;
        if let Some(trie) = shared.filter(|_| fresh) {
            let opening = opening_tokens(lm, &self.messages, &self.options.template_options)?;
            let len = common_prefix(&opening, &self.cache.tokens);
            trie.insert(&key, &self.cache, len)?;
        }
        generation.stats.left_out_messages = self.left_out;
        self.messages
            .push(ChatMessage::new("assistant", &generation.text));
        Ok(generation)
    }

    /// The prompt for the next reply, leaving old turns out if the context requires it.
    fn fit(&mut self, lm: &LoadedModel, params: &GenerateParams) -> Result<Vec<u32>> {
        let context = lm.model.args.max_position_embeddings;
        let room = params.max_tokens.min(context / 2).max(1);
        let system = usize::from(self.messages.first().is_some_and(|m| m.role == "system"));
        // An edit may have shortened the conversation; the newest message always stays.
        self.left_out = self
            .left_out
            .min(self.messages.len().saturating_sub(system + 1));
        loop {
            let visible: Vec<ChatMessage> = self.messages[..system]
                .iter()
                .chain(&self.messages[system + self.left_out..])
                .cloned()
                .collect();
            let prompt = prompt_tokens_with(lm, &visible, &self.options.template_options)?;
            if prompt.len() + room <= context {
                return Ok(prompt);
            }
            // Leave out the oldest user turn with its reply, never the newest message.
            let rest = &self.messages[system + self.left_out..];
            let next_user = rest
                .iter()
                .skip(1)
                .position(|m| m.role == "user")
                .map(|i| i + 1);
            match (self.options.overflow, next_user) {
                (Overflow::DropOldest, Some(n)) => self.left_out += n,
                _ => {
                    return Err(EngineError::InvalidRequest(format!(
                        "the conversation needs {} tokens plus {room} for the reply, but the \
                         model's context holds {context}; fork an earlier turn, start a new \
                         conversation or ask for a shorter reply",
                        prompt.len()
                    )))
                }
            }
        }
    }
}

/// The KV-cache storage `options` ask for, checked against the model.
fn kv_quant(lm: &LoadedModel, options: &ChatOptions) -> Result<Option<KvQuant>> {
    options
        .kv_bits
        .map(|bits| KvQuant::for_head_dim(bits, lm.model.args.head_dim))
        .transpose()
        .map_err(EngineError::InvalidRequest)
}

/// Metadata keys of a saved conversation.
const MESSAGES_KEY: &str = "adapt.messages";
const KEY_KEY: &str = "adapt.cache_key";
const OPTIONS_KEY: &str = "adapt.options";
/// Its topics (then the file holds each cached topic's layers in turn).
const TOPICS_KEY: &str = "adapt.topics";

impl ChatSession {
    /// Writes the conversation — its messages and its KV cache (with topics: every topic's) —
    /// to `path` in mlx-lm's prompt-cache format; returns the file's size.
    pub fn save(&self, lm: &LoadedModel, path: &Path) -> Result<u64> {
        let messages: Vec<(&str, &str)> = self
            .messages
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        let mut metadata = HashMap::from([
            (
                MESSAGES_KEY.to_string(),
                serde_json::to_string(&messages).expect("strings serialize"),
            ),
            (KEY_KEY.to_string(), self.key(lm).text()),
            (
                OPTIONS_KEY.to_string(),
                serde_json::to_string(&self.options).expect("options serialize"),
            ),
        ]);
        let Some(topics) = &self.topics else {
            return crate::prompt_cache::save(path, &self.cache, &metadata);
        };
        let (saved, caches) = topics.to_saved();
        if caches.is_empty() {
            return Err(EngineError::InvalidRequest(
                "an empty cache cannot be saved".into(),
            ));
        }
        metadata.insert(
            TOPICS_KEY.to_string(),
            serde_json::to_string(&saved).expect("topics serialize"),
        );
        let all = SequenceCache {
            tokens: Vec::new(),
            layers: caches
                .iter()
                .flat_map(|c| c.layers.iter().cloned())
                .collect(),
        };
        crate::prompt_cache::save(path, &all, &metadata)
    }

    /// Reopens a conversation saved by [`ChatSession::save`] with the same model, adapter and
    /// chat template; its cache is used as it is, so the next turn prefills only new tokens.
    pub fn open(lm: &LoadedModel, path: &Path) -> Result<ChatSession> {
        let (cache, metadata) = load_checked(lm, lm.info.adapter.as_ref(), path)?;
        let bad = |m: String| EngineError::invalid_model(path, m);
        let messages: Vec<(String, String)> = metadata
            .get(MESSAGES_KEY)
            .and_then(|m| serde_json::from_str(m).ok())
            .ok_or_else(|| bad(format!("metadata '{MESSAGES_KEY}' is missing or invalid")))?;
        let options = saved_options(&metadata);
        let (cache, topics) = split_topics(lm, cache, &metadata, messages.len(), path)?;
        Ok(ChatSession {
            messages: messages
                .into_iter()
                .map(|(role, content)| ChatMessage::new(role, content))
                .collect(),
            cache,
            options,
            left_out: 0,
            adapter: lm.info.adapter.clone(),
            topics,
        })
    }

    /// Replaces the caches with the ones saved in `path` (for these messages, e.g. after they
    /// were evicted from memory).
    pub fn restore_cache(&mut self, lm: &LoadedModel, path: &Path) -> Result<()> {
        let (cache, metadata) = load_checked(lm, self.adapter.as_ref(), path)?;
        let (cache, topics) = split_topics(lm, cache, &metadata, self.messages.len(), path)?;
        if topics.is_some() != self.topics.is_some() {
            return Err(EngineError::invalid_model(
                path,
                "it was saved with topics on and the conversation has them off, or the \
                 other way round",
            ));
        }
        self.options = saved_options(&metadata);
        self.cache = cache;
        self.topics = topics;
        Ok(())
    }
}

/// A saved conversation's cache, or (with topics) an empty one and the topics with theirs.
fn split_topics(
    lm: &LoadedModel,
    cache: SequenceCache,
    metadata: &HashMap<String, String>,
    n_messages: usize,
    path: &Path,
) -> Result<(SequenceCache, Option<Topics>)> {
    let bad = |m: String| EngineError::invalid_model(path, m);
    let n_layers = lm.model.n_layers();
    let Some(text) = metadata.get(TOPICS_KEY) else {
        if cache.layers.len() != n_layers {
            return Err(bad("its cache does not fit this model".into()));
        }
        return Ok((cache, None));
    };
    let saved = serde_json::from_str(text)
        .map_err(|e| bad(format!("metadata '{TOPICS_KEY}' is invalid: {e}")))?;
    let empty = SequenceCache {
        tokens: Vec::new(),
        layers: KvCache::for_layers(n_layers, kv_quant(lm, &saved_options(metadata))?),
    };
    let topics = Topics::from_saved(saved, cache.layers, n_layers, n_messages, &empty)
        .map_err(|m| bad(format!("its topics do not fit this model: {m}")))?;
    Ok((empty, Some(topics)))
}

fn saved_options(metadata: &HashMap<String, String>) -> ChatOptions {
    metadata
        .get(OPTIONS_KEY)
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default()
}

/// A saved cache, refused unless it was saved under the key it would be used with.
fn load_checked(
    lm: &LoadedModel,
    adapter: Option<&AdapterRef>,
    path: &Path,
) -> Result<(SequenceCache, HashMap<String, String>)> {
    let (cache, metadata) = crate::prompt_cache::load(path)?;
    let options = saved_options(&metadata);
    if metadata.get(KEY_KEY) != Some(&CacheKey::with_adapter(lm, adapter, &options).text()) {
        return Err(EngineError::invalid_model(
            path,
            "this conversation was saved with another model, adapter or chat template; \
             load that model (with its adapter) to continue it",
        ));
    }
    Ok((cache, metadata))
}

/// The tokens of `messages` as a finished conversation (no prompt for a reply after them):
/// what a cache holding exactly these messages holds.
pub fn render_history(
    lm: &LoadedModel,
    messages: &[ChatMessage],
    options: &ChatOptions,
) -> Result<Vec<u32>> {
    Ok(match &lm.chat_template {
        Some(template) => {
            let text = template.render_with(messages, false, &options.template_options)?;
            lm.tokenizer.encode(&text, false)?
        }
        None => {
            let text: String = messages
                .iter()
                .map(|m| format!("{}: {}\n", m.role, m.content))
                .collect();
            lm.tokenizer.encode(&text, true)?
        }
    })
}

/// The token ids of `messages` rendered for a reply from the assistant: with the model's chat
/// template when it has one (its own special tokens included, so none are added), otherwise
/// as plain "role: content" lines.
pub fn prompt_tokens(lm: &LoadedModel, messages: &[ChatMessage]) -> Result<Vec<u32>> {
    prompt_tokens_with(lm, messages, &serde_json::Value::Null)
}

/// [`prompt_tokens`] with extra chat-template variables.
pub fn prompt_tokens_with(
    lm: &LoadedModel,
    messages: &[ChatMessage],
    template_options: &serde_json::Value,
) -> Result<Vec<u32>> {
    Ok(match &lm.chat_template {
        Some(template) => {
            let text = template.render_with(messages, true, template_options)?;
            lm.tokenizer.encode(&text, false)?
        }
        None => {
            let mut text: String = messages
                .iter()
                .map(|m| format!("{}: {}\n", m.role, m.content))
                .collect();
            text.push_str("assistant:");
            lm.tokenizer.encode(&text, true)?
        }
    })
}

/// The tokens every conversation with these leading system messages shares before its first
/// user message: where the renderings of two different first messages part.
fn opening_tokens(
    lm: &LoadedModel,
    messages: &[ChatMessage],
    template_options: &serde_json::Value,
) -> Result<Vec<u32>> {
    let system: Vec<ChatMessage> = messages
        .iter()
        .take_while(|m| m.role == "system")
        .cloned()
        .collect();
    let with = |text: &str| {
        let mut m = system.clone();
        m.push(ChatMessage::new("user", text));
        prompt_tokens_with(lm, &m, template_options)
    };
    let (a, b) = (with("A")?, with("Z")?);
    let n = common_prefix(&a, &b);
    Ok(a[..n].to_vec())
}
