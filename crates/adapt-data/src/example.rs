//! Examples and formats: what one JSONL line (or CSV row) becomes after validation, and the
//! checks that turn a JSON value into an [`Example`] or an error naming the field.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{At, DataError};

/// The roles a chat message may have.
pub const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

/// A dataset format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(rename = "DataFormat"))]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{"messages": [{"role", "content"}, …], "tools": […]?}`.
    Chat,
    /// `{"prompt": …, "completion": …}` (keys configurable); CSV rows become these.
    Completions,
    /// `{"text": …}`.
    Text,
}

impl Format {
    /// `chat`, `completions` or `text`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Chat => "chat",
            Format::Completions => "completions",
            Format::Text => "text",
        }
    }

    /// Parses `chat`, `completions` or `text`.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "chat" => Some(Format::Chat),
            "completions" | "completion" => Some(Format::Completions),
            "text" => Some(Format::Text),
            _ => None,
        }
    }
}

/// Keys of the completions and text formats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Keys {
    /// Key of the prompt (default `prompt`).
    pub prompt: String,
    /// Key of the completion (default `completion`).
    pub completion: String,
    /// Key of the text (default `text`).
    pub text: String,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys {
            prompt: "prompt".into(),
            completion: "completion".into(),
            text: "text".into(),
        }
    }
}

/// One validated training example.
#[derive(Debug, Clone, PartialEq)]
pub enum Example {
    /// A conversation: messages as JSON objects (`role`, `content`, and whatever else the
    /// template reads, e.g. `tool_calls`), and optional tool definitions.
    Chat {
        /// The messages.
        messages: Vec<Value>,
        /// The `tools` array, if any.
        tools: Option<Value>,
    },
    /// A prompt and the completion to learn.
    Completion {
        /// The prompt.
        prompt: String,
        /// The completion.
        completion: String,
    },
    /// Plain text, all of it trained.
    Text {
        /// The text.
        text: String,
    },
}

impl Example {
    /// The example's format.
    pub fn format(&self) -> Format {
        match self {
            Example::Chat { .. } => Format::Chat,
            Example::Completion { .. } => Format::Completions,
            Example::Text { .. } => Format::Text,
        }
    }
}

/// The JSON type name of `v`, as errors print it.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The format a JSON object looks like, if any.
pub fn detect(obj: &Map<String, Value>, keys: &Keys) -> Option<Format> {
    if obj.contains_key("messages") {
        Some(Format::Chat)
    } else if obj.contains_key(&keys.prompt) || obj.contains_key(&keys.completion) {
        Some(Format::Completions)
    } else if obj.contains_key(&keys.text) {
        Some(Format::Text)
    } else {
        None
    }
}

/// Validates `obj` as an example of `format`.
pub fn parse(
    obj: Map<String, Value>,
    format: Format,
    keys: &Keys,
    at: &At,
) -> Result<Example, DataError> {
    match format {
        Format::Chat => parse_chat(obj, at),
        Format::Completions => Ok(Example::Completion {
            prompt: text_field(&obj, &keys.prompt, at)?,
            completion: text_field(&obj, &keys.completion, at)?,
        }),
        Format::Text => Ok(Example::Text {
            text: text_field(&obj, &keys.text, at)?,
        }),
    }
}

fn text_field(obj: &Map<String, Value>, key: &str, at: &At) -> Result<String, DataError> {
    let here = at;
    let at = || here.clone().field(key);
    match obj.get(key) {
        None => Err(DataError::MissingKey {
            at: here.clone(),
            key: key.to_string(),
        }),
        Some(Value::String(s)) if s.trim().is_empty() => Err(DataError::EmptyContent { at: at() }),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(DataError::WrongType {
            at: at(),
            expected: "a string",
            found: type_name(other),
        }),
    }
}

fn parse_chat(mut obj: Map<String, Value>, at: &At) -> Result<Example, DataError> {
    let tools = match obj.remove("tools") {
        None | Some(Value::Null) => None,
        Some(t @ Value::Array(_)) => Some(t),
        Some(other) => {
            return Err(DataError::WrongType {
                at: at.clone().field("tools"),
                expected: "an array",
                found: type_name(&other),
            })
        }
    };
    let messages = match obj.remove("messages") {
        Some(Value::Array(m)) => m,
        Some(other) => {
            return Err(DataError::WrongType {
                at: at.clone().field("messages"),
                expected: "an array",
                found: type_name(&other),
            })
        }
        None => {
            return Err(DataError::MissingKey {
                at: at.clone(),
                key: "messages".into(),
            })
        }
    };
    if messages.is_empty() {
        return Err(DataError::EmptyContent {
            at: at.clone().field("messages"),
        });
    }
    let mut has_assistant = false;
    for (i, m) in messages.iter().enumerate() {
        let field = |name: &str| {
            if name.is_empty() {
                at.clone().field(format!("messages[{i}]"))
            } else {
                at.clone().field(format!("messages[{i}].{name}"))
            }
        };
        let Value::Object(m) = m else {
            return Err(DataError::WrongType {
                at: field(""),
                expected: "an object",
                found: type_name(m),
            });
        };
        let role = match m.get("role") {
            Some(Value::String(r)) => r.as_str(),
            Some(other) => {
                return Err(DataError::WrongType {
                    at: field("role"),
                    expected: "a string",
                    found: type_name(other),
                })
            }
            None => {
                return Err(DataError::MissingKey {
                    at: field(""),
                    key: "role".into(),
                })
            }
        };
        if !ROLES.contains(&role) {
            return Err(DataError::UnknownRole {
                at: field("role"),
                role: role.to_string(),
            });
        }
        has_assistant |= role == "assistant";
        let has_tool_calls = matches!(m.get("tool_calls"), Some(Value::Array(a)) if !a.is_empty());
        match m.get("content") {
            Some(Value::String(s)) if s.trim().is_empty() && !has_tool_calls => {
                return Err(DataError::EmptyContent {
                    at: field("content"),
                })
            }
            Some(Value::String(_)) => {}
            None | Some(Value::Null) if has_tool_calls => {}
            None => {
                return Err(DataError::MissingKey {
                    at: field(""),
                    key: "content".into(),
                })
            }
            Some(other) => {
                return Err(DataError::WrongType {
                    at: field("content"),
                    expected: "a string",
                    found: type_name(other),
                })
            }
        }
    }
    if !has_assistant {
        return Err(DataError::NoAssistantTurn { at: at.clone() });
    }
    Ok(Example::Chat { messages, tools })
}
