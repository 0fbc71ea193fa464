//! Conversations that keep their KV cache.
//!
//! A [`ChatSession`] holds the messages and the [`SequenceCache`] of the tokens the model has
//! seen. Each turn renders the whole conversation with the model's chat template and tokenizes
//! it; [`generate`] then reuses the cached prefix, so only the new turn's tokens are prefilled.
//! If the rendering of earlier turns changes (an edit, a different tokenization of a reply),
//! the cache is trimmed to the longest prefix that still matches — never reused stale.

use adapt_text::ChatMessage;

use std::collections::HashMap;
use std::path::Path;

use crate::error::{EngineError, Result};
use crate::generate::{generate, GenerateParams, Generation, SequenceCache, TokenSink};
use crate::load::LoadedModel;

/// One conversation with its cache.
#[derive(Debug, Clone)]
pub struct ChatSession {
    pub messages: Vec<ChatMessage>,
    pub cache: SequenceCache,
}

impl ChatSession {
    /// A new conversation, optionally opening with a system message.
    pub fn new(lm: &LoadedModel, system: Option<&str>) -> ChatSession {
        ChatSession {
            messages: system
                .map(|s| vec![message("system", s)])
                .unwrap_or_default(),
            cache: SequenceCache::new(&lm.model),
        }
    }

    /// Adds the user's message, generates the assistant's reply and adds it too. On an error
    /// the conversation is left as it was.
    pub fn respond(
        &mut self,
        lm: &LoadedModel,
        user: &str,
        params: &GenerateParams,
        sink: &mut dyn TokenSink,
    ) -> Result<Generation> {
        self.messages.push(message("user", user));
        let result = prompt_tokens(lm, &self.messages).and_then(|prompt| {
            generate(
                &lm.model,
                &lm.tokenizer,
                &mut self.cache,
                &prompt,
                params,
                sink,
            )
        });
        match result {
            Ok(generation) => {
                self.messages.push(message("assistant", &generation.text));
                Ok(generation)
            }
            Err(e) => {
                self.messages.pop();
                Err(e)
            }
        }
    }
}

/// The token ids of `messages` rendered for a reply from the assistant: with the model's chat
/// template when it has one (its own special tokens included, so none are added), otherwise
/// as plain "role: content" lines.
/// Metadata keys of a saved conversation.
const MESSAGES_KEY: &str = "adapt.messages";
const MODEL_KEY: &str = "adapt.model";

impl ChatSession {
    /// Writes the conversation — its messages and its KV cache — to `path` in mlx-lm's
    /// prompt-cache format; returns the file's size.
    pub fn save(&self, lm: &LoadedModel, path: &Path) -> Result<u64> {
        let messages: Vec<(&str, &str)> = self
            .messages
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        let metadata = HashMap::from([
            (
                MESSAGES_KEY.to_string(),
                serde_json::to_string(&messages).expect("strings serialize"),
            ),
            (MODEL_KEY.to_string(), cache_key(lm)),
        ]);
        crate::prompt_cache::save(path, &self.cache, &metadata)
    }

    /// Reopens a conversation saved by [`ChatSession::save`] with the same model and chat
    /// template; its cache is used as it is, so the next turn prefills only its new tokens.
    pub fn open(lm: &LoadedModel, path: &Path) -> Result<ChatSession> {
        let (cache, metadata) = crate::prompt_cache::load(path)?;
        let bad = |m: String| EngineError::invalid_model(path, m);
        if metadata.get(MODEL_KEY) != Some(&cache_key(lm)) {
            return Err(bad(
                "this conversation was saved with another model, adapter or chat template; \
                 load that model (with its adapter) to continue it"
                    .into(),
            ));
        }
        if cache.layers.len() != lm.model.n_layers() {
            return Err(bad("its cache does not fit this model".into()));
        }
        let messages: Vec<(String, String)> = metadata
            .get(MESSAGES_KEY)
            .and_then(|m| serde_json::from_str(m).ok())
            .ok_or_else(|| bad(format!("metadata '{MESSAGES_KEY}' is missing or invalid")))?;
        Ok(ChatSession {
            messages: messages
                .into_iter()
                .map(|(role, content)| message(&role, &content))
                .collect(),
            cache,
        })
    }
}

/// What a saved cache is only valid for: the model's weights, its adapter and its chat
/// template.
fn cache_key(lm: &LoadedModel) -> String {
    // FNV-1a over the template: stable across runs and builds.
    let template = lm.tokenizer.chat_template().unwrap_or("");
    let hash = template.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let adapter = match &lm.info.adapter {
        Some((_, fingerprint)) => format!(" · adapter {fingerprint}"),
        None => String::new(),
    };
    format!(
        "{} · {} params · template {hash:016x}{adapter}",
        lm.info.path.display(),
        lm.info.n_params
    )
}

pub fn prompt_tokens(lm: &LoadedModel, messages: &[ChatMessage]) -> Result<Vec<u32>> {
    Ok(match &lm.chat_template {
        Some(template) => {
            let text = template.render(messages, true)?;
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

fn message(role: &str, content: &str) -> ChatMessage {
    ChatMessage {
        role: role.to_string(),
        content: content.to_string(),
    }
}
