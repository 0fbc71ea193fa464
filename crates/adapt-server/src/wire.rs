//! OpenAI's request bodies as this server reads them: JSON checked field by field (a field
//! of the wrong type is refused naming it; fields this server does not know are ignored, as
//! OpenAI's clients send many), then made into the API's [`CompletionRequest`]. Unsupported
//! settings that would change the answer (`n` > 1, penalties other than 0, a forced tool
//! choice, a JSON schema) are refused rather than ignored.

use adapt_api::{GenerateParams, PromptInput, SamplingParams};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::errors::HttpError;

/// Most stop sequences a request may give (OpenAI's limit).
const MAX_STOPS: usize = 4;
/// Most alternatives a request may ask for with each token (OpenAI's limit).
const MAX_TOP_LOGPROBS: u32 = 20;

/// Parses `body` as a JSON object, then as `T`, naming the field that is wrong.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<(T, Value), HttpError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        HttpError::invalid(None, format!("the request body is not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(HttpError::invalid(
            None,
            "the request body must be a JSON object",
        ));
    }
    let typed = fields(&value)?;
    Ok((typed, value))
}

/// Reads `T` from the object `value`.
pub fn fields<T: DeserializeOwned>(value: &Value) -> Result<T, HttpError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner().to_string();
        let path = e.path().to_string();
        let param = match path.as_str() {
            "." => inner
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
                .map(str::to_string),
            p => Some(p.to_string()),
        };
        let message = match &param {
            Some(p) => format!("'{p}': {inner}"),
            None => inner,
        };
        HttpError::invalid(param.as_deref(), message)
    })
}

/// `stop`: one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// The settings both endpoints share.
#[derive(Debug, Default, Deserialize)]
pub struct Common {
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub seed: Option<u64>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub stop: Option<Stop>,
    pub n: Option<u64>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
}

impl Common {
    /// The generation settings, with `max_tokens` at most `limit` (and `limit` when absent).
    pub fn params(&self, limit: usize) -> Result<GenerateParams, HttpError> {
        if let Some(n) = self.n.filter(|&n| n != 1) {
            return Err(HttpError::invalid(
                Some("n"),
                format!("n = {n}: this server generates one choice per request (n = 1)"),
            ));
        }
        for (name, value) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if value.is_some_and(|v| v != 0.0) {
                return Err(HttpError::invalid(
                    Some(name),
                    format!("{name} is not supported; use repetition_penalty"),
                ));
            }
        }
        let (field, asked) = match (self.max_completion_tokens, self.max_tokens) {
            (Some(n), _) => ("max_completion_tokens", Some(n)),
            (None, n) => ("max_tokens", n),
        };
        let max_tokens = match asked {
            None => limit,
            Some(0) => {
                return Err(HttpError::invalid(
                    Some(field),
                    format!("{field} must be at least 1"),
                ))
            }
            Some(n) if n > limit as u64 => {
                return Err(HttpError::invalid(
                    Some(field),
                    format!(
                        "{field} is {n}; this server generates at most {limit} tokens per request"
                    ),
                ))
            }
            Some(n) => n as usize,
        };
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) if v.len() > MAX_STOPS => {
                return Err(HttpError::invalid(
                    Some("stop"),
                    format!("at most {MAX_STOPS} stop sequences"),
                ))
            }
            Some(Stop::Many(v)) => v.clone(),
        };
        let defaults = SamplingParams::default();
        let sampling = SamplingParams {
            // OpenAI's defaults: temperature 1, no truncation.
            temperature: self.temperature.unwrap_or(1.0),
            top_p: self.top_p.unwrap_or(1.0),
            top_k: self.top_k.unwrap_or(0),
            min_p: self.min_p.unwrap_or(0.0),
            repetition_penalty: self.repetition_penalty.unwrap_or(1.0),
            seed: self.seed,
            ..defaults
        };
        if self.temperature.is_some_and(|t| t > 2.0) {
            return Err(HttpError::invalid(
                Some("temperature"),
                "temperature is at most 2",
            ));
        }
        sampling.validate().map_err(|message| {
            let param = message
                .strip_prefix("sampling: ")
                .and_then(|m| m.split_whitespace().next())
                .map(str::to_string);
            HttpError::invalid(param.as_deref(), message)
        })?;
        Ok(GenerateParams {
            max_tokens,
            sampling,
            stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
            ..GenerateParams::default()
        })
    }

    pub fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// `POST /v1/chat/completions`'s own fields.
#[derive(Debug, Deserialize)]
pub struct ChatFields {
    pub messages: Vec<Value>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    pub response_format: Option<ResponseFormat>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
}

impl ChatFields {
    /// The prompt: the messages, with the tools unless `tool_choice` is `"none"`.
    pub fn prompt(&self) -> Result<PromptInput, HttpError> {
        if let Some(format) = self.response_format.as_ref().filter(|f| f.kind != "text") {
            return Err(HttpError::invalid(
                Some("response_format"),
                format!(
                    "response_format '{}' is not supported; only 'text'",
                    format.kind
                ),
            ));
        }
        let tools = self.tools.clone().unwrap_or_default();
        let tools = match self.tool_choice.as_ref() {
            None | Some(Value::Null) => tools,
            Some(Value::String(s)) if s == "auto" => tools,
            Some(Value::String(s)) if s == "none" => Vec::new(),
            Some(other) => {
                return Err(HttpError::invalid(
                    Some("tool_choice"),
                    format!(
                        "tool_choice {other} is not supported: the model decides whether to call \
                         a tool ('auto') or is told of none ('none')"
                    ),
                ))
            }
        };
        Ok(PromptInput::Chat {
            messages: self.messages.clone(),
            tools,
        })
    }

    /// How many alternatives to report with each token, if log probabilities are asked for.
    pub fn logprobs(&self) -> Result<Option<usize>, HttpError> {
        let top = self.top_logprobs.unwrap_or(0);
        if top > MAX_TOP_LOGPROBS {
            return Err(HttpError::invalid(
                Some("top_logprobs"),
                format!("top_logprobs is at most {MAX_TOP_LOGPROBS}"),
            ));
        }
        Ok(self.logprobs.unwrap_or(false).then_some(top as usize))
    }
}

/// `prompt`: a string, or a list holding one.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    One(String),
    Many(Vec<String>),
}

/// `POST /v1/completions`'s own fields.
#[derive(Debug, Deserialize)]
pub struct CompletionFields {
    pub prompt: PromptField,
    pub logprobs: Option<u32>,
    pub echo: Option<bool>,
    pub suffix: Option<String>,
    pub best_of: Option<u64>,
}

impl CompletionFields {
    pub fn prompt(&self) -> Result<PromptInput, HttpError> {
        if self.echo == Some(true) {
            return Err(HttpError::invalid(Some("echo"), "echo is not supported"));
        }
        if self.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(HttpError::invalid(
                Some("suffix"),
                "suffix is not supported",
            ));
        }
        if self.best_of.is_some_and(|b| b != 1) {
            return Err(HttpError::invalid(Some("best_of"), "best_of must be 1"));
        }
        match &self.prompt {
            PromptField::One(p) => Ok(PromptInput::Text(p.clone())),
            PromptField::Many(v) if v.len() == 1 => Ok(PromptInput::Text(v[0].clone())),
            PromptField::Many(v) => Err(HttpError::invalid(
                Some("prompt"),
                format!(
                    "{} prompts given; this server completes one prompt per request",
                    v.len()
                ),
            )),
        }
    }

    pub fn logprobs(&self) -> Result<Option<usize>, HttpError> {
        match self.logprobs {
            Some(n) if n > 5 => Err(HttpError::invalid(
                Some("logprobs"),
                "logprobs is at most 5",
            )),
            n => Ok(n.map(|n| n as usize)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common(v: Value) -> Result<GenerateParams, HttpError> {
        fields::<Common>(&v)?.params(100)
    }

    #[test]
    fn wrong_types_and_ranges_name_their_field() {
        let e = fields::<Common>(&json!({"temperature": "hot"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = fields::<ChatFields>(&json!({"model": "m"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = fields::<ChatFields>(&json!({"messages": "hi"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert_eq!(
            common(json!({"top_p": 0})).unwrap_err().param.as_deref(),
            Some("top_p")
        );
        assert_eq!(
            common(json!({"max_tokens": 101}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            common(json!({"n": 2})).unwrap_err().param.as_deref(),
            Some("n")
        );
        assert_eq!(
            common(json!({"stop": ["a","b","c","d","e"]}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("stop")
        );
        assert_eq!(
            common(json!({"presence_penalty": 0.5}))
                .unwrap_err()
                .param
                .as_deref(),
            Some("presence_penalty")
        );
        let e = parse::<Common>(b"{not json").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(parse::<Common>(b"[1]").is_err());
    }

    #[test]
    fn settings_become_generation_parameters() {
        let p = common(json!({"temperature": 0, "top_k": 5, "seed": 3, "max_completion_tokens": 7, "stop": "x", "unknown": {"any": 1}})).unwrap();
        assert_eq!(
            (p.max_tokens, p.sampling.top_k, p.sampling.seed),
            (7, 5, Some(3))
        );
        assert_eq!(p.stop, vec!["x".to_string()]);
        let p = common(json!({})).unwrap();
        assert_eq!((p.max_tokens, p.sampling.temperature), (100, 1.0));
        let chat: ChatFields = fields(
            &json!({"messages": [], "tools": [{"type": "function"}], "tool_choice": "none"}),
        )
        .unwrap();
        assert!(
            matches!(chat.prompt().unwrap(), PromptInput::Chat { tools, .. } if tools.is_empty())
        );
        let chat: ChatFields = fields(&json!({"messages": [], "tool_choice": "required"})).unwrap();
        assert_eq!(
            chat.prompt().unwrap_err().param.as_deref(),
            Some("tool_choice")
        );
    }
}
