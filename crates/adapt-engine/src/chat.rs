//! Conversations that keep their KV cache.
//!
//! A [`ChatSession`] holds the messages and the [`SequenceCache`] of the tokens the model has
//! seen. Each turn renders the whole conversation with the model's chat template and tokenizes
//! it; [`generate`] then reuses the cached prefix, so only the new turn's tokens are prefilled.
//! If the rendering of earlier turns changes (an edit, a different tokenization of a reply),
//! the cache is trimmed to the longest prefix that still matches — never reused stale.

use adapt_text::ChatMessage;

use crate::error::Result;
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
