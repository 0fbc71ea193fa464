//! OpenAI's response bodies: a chat completion or a text completion, whole or as the chunks
//! of a stream (`data: {…}` events ending with `data: [DONE]`), with `usage` (cached prompt
//! tokens included) and log probabilities.

use adapt_api::{Completion, TokenText, ToolCall};
use serde_json::{json, Value};

/// Which endpoint a reply is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Text,
}

/// What every body of one reply shares.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: Kind,
    pub id: String,
    pub created: i64,
    pub model: String,
}

impl Reply {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Text, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": Value::Null,
            "choices": choices,
        })
    }

    /// The whole reply.
    pub fn whole(&self, c: &Completion, logprobs: Option<&[TokenText]>) -> Value {
        let choice = match self.kind {
            Kind::Chat => {
                let mut message = json!({"role": "assistant", "content": c.text});
                if !c.tool_calls.is_empty() {
                    message["tool_calls"] = tool_calls(&c.tool_calls, false);
                    if c.text.is_empty() {
                        message["content"] = Value::Null;
                    }
                }
                json!({
                    "index": 0,
                    "message": message,
                    "logprobs": logprobs.map(chat_logprobs),
                    "finish_reason": c.finish.as_str(),
                })
            }
            Kind::Text => json!({
                "index": 0,
                "text": c.text,
                "logprobs": logprobs.map(text_logprobs),
                "finish_reason": c.finish.as_str(),
            }),
        };
        let mut body = self.envelope(false, vec![choice]);
        body["usage"] = usage(c);
        body
    }

    /// A chunk carrying `text` (and the log probabilities of its tokens); for a chat, the
    /// first chunk of a stream carries the role.
    pub fn text_chunk(&self, text: &str, logprobs: Option<&[TokenText]>, first: bool) -> Value {
        let choice = match self.kind {
            Kind::Chat => {
                let mut delta = json!({"content": text});
                if first {
                    delta["role"] = "assistant".into();
                }
                json!({"index": 0, "delta": delta, "logprobs": logprobs.map(chat_logprobs), "finish_reason": Value::Null})
            }
            Kind::Text => {
                json!({"index": 0, "text": text, "logprobs": logprobs.map(text_logprobs), "finish_reason": Value::Null})
            }
        };
        self.envelope(true, vec![choice])
    }

    /// The chunks that end a stream: the tool calls (a chat's), the finish reason, and the
    /// usage when asked for.
    pub fn final_chunks(&self, c: &Completion, include_usage: bool) -> Vec<Value> {
        let mut chunks = Vec::new();
        let finish = c.finish.as_str();
        match self.kind {
            Kind::Chat => {
                if !c.tool_calls.is_empty() {
                    let delta = json!({"tool_calls": tool_calls(&c.tool_calls, true)});
                    chunks.push(self.envelope(true, vec![json!({"index": 0, "delta": delta, "logprobs": Value::Null, "finish_reason": Value::Null})]));
                }
                chunks.push(self.envelope(true, vec![json!({"index": 0, "delta": {}, "logprobs": Value::Null, "finish_reason": finish})]));
            }
            Kind::Text => chunks.push(self.envelope(true, vec![json!({"index": 0, "text": "", "logprobs": Value::Null, "finish_reason": finish})])),
        }
        if include_usage {
            let mut last = self.envelope(true, Vec::new());
            last["usage"] = usage(c);
            chunks.push(last);
        }
        chunks
    }
}

fn usage(c: &Completion) -> Value {
    let s = &c.stats;
    json!({
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.generated_tokens,
        "total_tokens": s.prompt_tokens + s.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": s.reused_tokens},
    })
}

fn tool_calls(calls: &[ToolCall], indexed: bool) -> Value {
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let mut v = json!({
                "id": format!("call_{}", crate::ids::next_id()),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            });
            if indexed {
                v["index"] = i.into();
            }
            v
        })
        .collect()
}

fn chat_logprobs(tokens: &[TokenText]) -> Value {
    let entry = |t: &TokenText| json!({"token": t.token, "logprob": t.logprob, "bytes": t.bytes});
    let content: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let mut e = entry(t);
            e["top_logprobs"] = t.top.iter().map(entry).collect();
            e
        })
        .collect();
    json!({"content": content})
}

fn text_logprobs(tokens: &[TokenText]) -> Value {
    let mut offset = 0;
    let mut offsets = Vec::new();
    for t in tokens {
        offsets.push(offset);
        offset += t.token.len();
    }
    json!({
        "tokens": tokens.iter().map(|t| t.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": tokens.iter().map(|t| {
            t.top.iter().map(|a| (a.token.clone(), json!(a.logprob))).collect::<serde_json::Map<_, _>>()
        }).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

/// A server-sent event holding `value`.
pub fn event(value: &Value) -> String {
    format!("data: {value}\n\n")
}

/// The event that ends every stream.
pub const DONE: &str = "data: [DONE]\n\n";
