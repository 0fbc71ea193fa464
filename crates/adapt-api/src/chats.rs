//! Conversations: started (on the loaded adapter, another one, or the base model), continued
//! (say, regenerate, edit), forked, their system message changed, their state read, and a
//! reply in progress stopped.
//!
//! The engine thread holds the conversations and their caches in its pool (within the memory
//! budget); each public method here sends its engine-side function (the `*_on_engine` ones
//! below it). A conversation saved by name (`saved_chats.rs`) has its messages written to the
//! store after every turn.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use adapt_engine::adapters::{fingerprint, read_config};
use adapt_engine::{
    CacheKey, ChatMessage, ChatOptions, ChatSession, EngineError, GenerateParams, Generation,
    TopicChoice, TopicSettings,
};
use serde::Serialize;

use crate::adapt::Adapt;
use crate::engine_thread::{ChatId, EngineState, EventSink, GenerationEvent};
use crate::error::{ApiError, ErrorCode};

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
    /// Its topics, when it keeps them.
    pub topics: Option<TopicsView>,
}

/// A conversation's topics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TopicsView {
    pub settings: TopicSettings,
    /// The block whose hidden states route messages (1-based).
    pub layer: usize,
    pub topics: Vec<TopicInfo>,
    /// The topic of each message (`null`: a system message).
    pub message_topics: Vec<Option<u32>>,
}

/// One topic of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TopicInfo {
    pub id: u32,
    pub name: String,
    pub turns: usize,
    /// Tokens its cache holds (the system message and its turns).
    pub cache_tokens: usize,
    pub cache_bytes: u64,
}

/// One turn of a conversation.
enum Turn {
    Say(String, TopicChoice),
    Regenerate,
    Edit { index: usize, content: String },
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
        self.engine
            .call(move |state| new_chat_on_engine(state, messages, options, None))
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
        self.engine
            .call(move |state| new_chat_on_engine(state, messages, options, Some(adapter)))
    }

    /// Sends the user's `message` in conversation `chat` and streams the reply.
    pub fn chat(
        &self,
        chat: ChatId,
        message: &str,
        params: &GenerateParams,
        on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<Generation, ApiError> {
        self.chat_in(chat, message, TopicChoice::Auto, params, on_event)
    }

    /// [`Adapt::chat`] into a topic of a conversation that keeps them: `choice` picks it
    /// (or a new one), or leaves it to routing by meaning. The first event says where the
    /// message went ([`GenerationEvent::Routed`]).
    pub fn chat_in(
        &self,
        chat: ChatId,
        message: &str,
        choice: TopicChoice,
        params: &GenerateParams,
        on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<Generation, ApiError> {
        let turn = Turn::Say(message.to_string(), choice);
        self.turn(chat, turn, params, on_event)
    }

    /// Turns `chat`'s topics on with `settings` (again: new settings), or off with `None`.
    /// Turned on, the turns so far make the first topic.
    pub fn set_topics(
        &self,
        chat: ChatId,
        settings: Option<TopicSettings>,
    ) -> Result<ChatState, ApiError> {
        self.engine.call(move |state| {
            let EngineState { model, chats, .. } = state;
            let lm = model.as_ref().ok_or_else(ApiError::no_model)?;
            let session = chats.session(lm, chat.0).map_err(|_| no_chat())?;
            match settings {
                Some(settings) => session.enable_topics(lm, settings)?,
                None => session.disable_topics(),
            }
            Ok(())
        })?;
        self.chat_state(chat)
    }

    /// Moves user message `index` of `chat` (with its reply) to another topic, or a new one
    /// with [`TopicChoice::New`]: it is trimmed from its topic's cache and prefilled in the
    /// other's.
    pub fn move_message(
        &self,
        chat: ChatId,
        index: usize,
        to: TopicChoice,
    ) -> Result<ChatState, ApiError> {
        self.engine.call(move |state| {
            let EngineState { model, chats, .. } = state;
            let lm = model.as_mut().ok_or_else(ApiError::no_model)?;
            if let Some(adapter) = chats.get(chat.0).map(|s| s.adapter.clone()) {
                lm.use_adapter(adapter.as_ref())?;
            }
            let lm = &*lm;
            let session = chats.session(lm, chat.0).map_err(|_| no_chat())?;
            session.move_message(lm, index, to)?;
            chats.enforce(lm, chat.0)?;
            Ok(())
        })?;
        self.chat_state(chat)
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

    /// Stops the reply `chat` is streaming, if any (it ends with what it has).
    pub fn stop_reply(&self, chat: ChatId) {
        if let Some(stop) = self.records.replies().get(&chat) {
            stop.store(true, Ordering::Relaxed);
        }
    }

    fn turn(
        &self,
        chat: ChatId,
        turn: Turn,
        params: &GenerateParams,
        mut on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<Generation, ApiError> {
        let params = params.clone();
        let stop = Arc::new(AtomicBool::new(false));
        self.records.replies().insert(chat, stop.clone());
        let generation = self.engine.stream(
            move |state, sink| turn_on_engine(state, chat, turn, &params, sink),
            |event| on_event(event) && !stop.load(Ordering::Relaxed),
        );
        self.records.replies().remove(&chat);
        let generation = generation?;
        self.sync(chat)?;
        Ok(generation)
    }

    /// A new conversation with `chat`'s first `turns` turns, starting from its cache.
    pub fn fork_chat(&self, chat: ChatId, turns: usize) -> Result<ChatId, ApiError> {
        self.engine.call(move |state| {
            let EngineState { model, chats, .. } = state;
            let lm = model.as_ref().ok_or_else(ApiError::no_model)?;
            let session = chats.get(chat.0).ok_or_else(no_chat)?;
            let fork = session.fork(lm, turns)?;
            Ok(ChatId(chats.insert(fork, None)))
        })
    }

    /// Sets (or removes) `chat`'s system message; the next turn reuses the cache only as far
    /// as the conversation's rendering is unchanged.
    pub fn set_system(&self, chat: ChatId, system: Option<&str>) -> Result<(), ApiError> {
        let system = system.map(str::to_string);
        self.engine.call(move |state| {
            let EngineState { model, chats, .. } = state;
            let lm = model.as_ref().ok_or_else(ApiError::no_model)?;
            let session = chats.session(lm, chat.0).map_err(|_| no_chat())?;
            session.set_system(system.as_deref());
            Ok(())
        })?;
        self.sync(chat)
    }

    /// Where `chat` stands: its messages, cache in memory and on disk.
    pub fn chat_state(&self, chat: ChatId) -> Result<ChatState, ApiError> {
        let mut state = self.engine.call(move |s| state_on_engine(s, chat))?;
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

    /// Writes a named conversation's messages to the store.
    pub(crate) fn sync(&self, chat: ChatId) -> Result<(), ApiError> {
        let Some((_, conversation)) = self.named(chat) else {
            return Ok(());
        };
        let state = self.engine.call(move |s| state_on_engine(s, chat))?;
        let messages: Vec<(&str, &str)> = state
            .messages
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        self.store()?.set_messages(conversation, &messages)?;
        Ok(())
    }

    /// The name and store record of `chat`, if it is saved by name.
    pub(crate) fn named(&self, chat: ChatId) -> Option<(String, i64)> {
        self.records.named_chats().get(&chat).cloned()
    }

    /// The file a conversation saved as `name` keeps its cache in.
    pub(crate) fn chat_file(&self, name: &str) -> Result<PathBuf, ApiError> {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if !ok {
            return Err(ApiError::new(
                ErrorCode::ApiBadName,
                format!("'{name}' is not a usable name: use letters, digits, '-', '_' and '.'"),
            ));
        }
        Ok(self
            .data_dir()?
            .kv_caches()
            .join(format!("{name}.safetensors")))
    }
}

/// On the engine thread: a new conversation; `adapter` (when given) is the one it talks to,
/// `None` inside meaning the base model.
fn new_chat_on_engine(
    state: &mut EngineState,
    messages: Vec<ChatMessage>,
    options: ChatOptions,
    adapter: Option<Option<PathBuf>>,
) -> Result<ChatId, ApiError> {
    let lm = state.loaded()?;
    let mut session = ChatSession::with_messages(lm, messages, options)?;
    if let Some(choice) = adapter {
        let adapter = choice
            .map(|dir| -> Result<_, EngineError> {
                read_config(&dir)?;
                let fingerprint = fingerprint(&dir)?;
                Ok((dir, fingerprint))
            })
            .transpose()?;
        session.set_adapter(adapter)?;
    }
    Ok(ChatId(state.chats.insert(session, None)))
}

/// On the engine thread: one turn of `chat`, with its adapter attached to the base weights.
fn turn_on_engine(
    state: &mut EngineState,
    chat: ChatId,
    turn: Turn,
    params: &GenerateParams,
    sink: &mut EventSink<'_>,
) -> Result<Generation, ApiError> {
    let EngineState { model, chats, .. } = state;
    let lm = model.as_mut().ok_or_else(ApiError::no_model)?;
    if let Some(adapter) = chats.get(chat.0).map(|s| s.adapter.clone()) {
        lm.use_adapter(adapter.as_ref())?;
    }
    let lm = &*lm;
    chats
        .turn(lm, chat.0, |session, prefixes| match turn {
            Turn::Say(text, TopicChoice::Auto) if session.topics.is_none() => {
                session.respond(lm, &text, params, sink, Some(prefixes))
            }
            Turn::Say(text, choice) => {
                let routed = session.route(lm, &text, choice)?;
                sink.routed(&routed.routing);
                session.respond_routed(lm, &text, routed, params, sink, Some(prefixes))
            }
            Turn::Regenerate => session.regenerate(lm, params, sink),
            Turn::Edit { index, content } => session.edit(lm, index, &content, params, sink),
        })
        .map(|(generation, _)| generation)
        .map_err(|e| match chats.get(chat.0) {
            None => no_chat(),
            Some(_) => e.into(),
        })
}

/// On the engine thread: where `chat` stands in memory.
pub(crate) fn state_on_engine(state: &EngineState, chat: ChatId) -> Result<ChatState, ApiError> {
    let chats = &state.chats;
    let s = chats.get(chat.0).ok_or_else(no_chat)?;
    Ok(ChatState {
        messages: s.messages.clone(),
        turns: s.turns(),
        cached_tokens: s.cached_tokens(),
        cache_bytes: s.cache_nbytes() as u64,
        evicted: chats.is_evicted(chat.0),
        kv_bits: s.options.kv_bits,
        left_out_messages: s.left_out,
        all_caches_bytes: chats.nbytes() as u64,
        prefixes: chats.prefixes.len(),
        topics: s.topics.as_ref().map(|t| TopicsView {
            settings: t.settings.clone(),
            layer: state
                .model
                .as_ref()
                .map_or(0, |lm| t.settings.layer_for(lm)),
            topics: t
                .topics
                .iter()
                .map(|topic| TopicInfo {
                    id: topic.id,
                    name: topic.name.clone(),
                    turns: t.turns(topic.id, &s.messages),
                    cache_tokens: topic.cache.tokens.len(),
                    cache_bytes: topic.cache.nbytes() as u64,
                })
                .collect(),
            message_topics: t.of.clone(),
        }),
        name: None,
        disk_bytes: None,
    })
}

pub(crate) fn no_chat() -> ApiError {
    ApiError::new(
        ErrorCode::ApiNoChat,
        "that conversation does not exist (it was closed, or the model changed)",
    )
}

/// The store's form of a cache key.
pub(crate) fn store_key(key: &CacheKey) -> adapt_store::CacheKey {
    adapt_store::CacheKey {
        model: key.model.clone(),
        adapter: key.adapter.clone(),
        template: key.template.clone(),
    }
}
