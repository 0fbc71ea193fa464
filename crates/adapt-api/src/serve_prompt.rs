//! What a request's prompt becomes before the engine sees it, and what the reply becomes
//! after: OpenAI-shaped messages (text parts, tool calls, tool results) checked and made into
//! the values Hugging Face chat templates read, and tool calls found in the generated text in
//! the format the model's template teaches it ([`ToolFormat`]), held back from the streamed
//! text by a [`ToolFilter`]. Nothing here touches the engine.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ErrorCode, FieldProblem};

/// The roles a message may have (`developer` is read as `system`).
const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

/// A request refused for one field.
pub(crate) fn bad_field(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError {
        code: ErrorCode::RequestInvalid,
        message: format!("'{field}': {message}"),
        fields: vec![FieldProblem {
            field: field.to_string(),
            message,
            warning: false,
        }],
    }
}

/// The messages as a chat template reads them: roles checked, text parts joined, tool calls'
/// arguments as objects (as Hugging Face templates expect).
pub(crate) fn template_messages(messages: &[Value]) -> Result<Vec<Value>, ApiError> {
    if messages.is_empty() {
        return Err(bad_field("messages", "at least one message is needed"));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| template_message(i, m))
        .collect()
}

fn template_message(i: usize, message: &Value) -> Result<Value, ApiError> {
    let field = |name: &str| format!("messages[{i}].{name}");
    let Some(object) = message.as_object() else {
        return Err(bad_field(
            &format!("messages[{i}]"),
            "a message is an object",
        ));
    };
    let role = match object.get("role").and_then(Value::as_str) {
        Some("developer") => "system",
        Some(r) if ROLES.contains(&r) => r,
        Some(r) => {
            return Err(bad_field(
                &field("role"),
                format!("'{r}' is not a role; use one of {}", ROLES.join(", ")),
            ))
        }
        None => {
            return Err(bad_field(
                &field("role"),
                "a message needs a role (a string)",
            ))
        }
    };
    let mut out = object.clone();
    out.insert("role".into(), role.into());
    let has_calls = object
        .get("tool_calls")
        .is_some_and(|c| c.as_array().is_some_and(|a| !a.is_empty()));
    let content = match object.get("content") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) if role == "assistant" && has_calls => String::new(),
        Some(Value::Array(parts)) => text_parts(&field("content"), parts)?,
        None | Some(Value::Null) => {
            return Err(bad_field(&field("content"), "a message needs its content"))
        }
        Some(_) => {
            return Err(bad_field(
                &field("content"),
                "content is a string or a list of text parts",
            ))
        }
    };
    out.insert("content".into(), content.into());
    if let Some(calls) = object.get("tool_calls").filter(|c| !c.is_null()) {
        out.insert(
            "tool_calls".into(),
            template_tool_calls(&field("tool_calls"), calls)?,
        );
    }
    Ok(Value::Object(out))
}

/// `[{"type": "text", "text": …}, …]` as one text.
fn text_parts(field: &str, parts: &[Value]) -> Result<String, ApiError> {
    let mut text = String::new();
    for (j, part) in parts.iter().enumerate() {
        match (part["type"].as_str(), part["text"].as_str()) {
            (Some("text"), Some(t)) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(t);
            }
            (Some(kind), _) if kind != "text" => {
                return Err(bad_field(
                    &format!("{field}[{j}].type"),
                    format!("'{kind}' parts are not supported; this server takes text only"),
                ))
            }
            _ => {
                return Err(bad_field(
                    &format!("{field}[{j}]"),
                    "a content part is {\"type\": \"text\", \"text\": \"…\"}",
                ))
            }
        }
    }
    Ok(text)
}

/// Tool calls with their arguments parsed into objects where they are JSON text.
fn template_tool_calls(field: &str, calls: &Value) -> Result<Value, ApiError> {
    let Some(calls) = calls.as_array() else {
        return Err(bad_field(field, "tool_calls is a list"));
    };
    let mut out = Vec::new();
    for (j, call) in calls.iter().enumerate() {
        let function = &call["function"];
        let Some(name) = function["name"].as_str() else {
            return Err(bad_field(
                &format!("{field}[{j}].function.name"),
                "a tool call names its function",
            ));
        };
        let arguments = match &function["arguments"] {
            Value::String(s) => {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
            }
            Value::Null => json!({}),
            other => other.clone(),
        };
        let mut call = call.as_object().cloned().unwrap_or_default();
        call.insert("type".into(), "function".into());
        call.insert(
            "function".into(),
            json!({"name": name, "arguments": arguments}),
        );
        out.push(Value::Object(call));
    }
    Ok(Value::Array(out))
}

/// The tools as templates read them (`{"type": "function", "function": {…}}`), checked.
pub(crate) fn template_tools(tools: &[Value]) -> Result<Vec<Value>, ApiError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let name = tool["function"]["name"].as_str();
            if tool["type"].as_str().unwrap_or("function") != "function" || name.is_none() {
                return Err(bad_field(
                    &format!("tools[{i}]"),
                    "a tool is {\"type\": \"function\", \"function\": {\"name\": …, \"parameters\": …}}",
                ));
            }
            Ok(tool.clone())
        })
        .collect()
}

/// How a model's chat template teaches it to call tools, read from the template's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// `<tool_call>{"name": …, "arguments": …}</tool_call>` (Qwen 2.5 / 3, Hermes, SmolLM3).
    Tagged,
    /// `[TOOL_CALLS][{"name": …, "arguments": …}, …]` (Mistral).
    Mistral,
    /// A reply that is one JSON object `{"name": …, "parameters": …}`, maybe after
    /// `<|python_tag|>` (Llama 3.1 and later).
    BareJson,
}

impl ToolFormat {
    /// The format a template with source `template` uses; `None` when it defines none.
    pub fn of(template: &str) -> Option<ToolFormat> {
        if template.contains("<tool_call>") {
            Some(ToolFormat::Tagged)
        } else if template.contains("[TOOL_CALLS]") {
            Some(ToolFormat::Mistral)
        } else if template.contains("<|python_tag|>") || template.contains("\"parameters\"") {
            Some(ToolFormat::BareJson)
        } else {
            None
        }
    }

    /// Where a tool call may start in `text`: the byte offset from which text is held back.
    fn start(self, text: &str) -> Option<usize> {
        match self {
            ToolFormat::Tagged => text.find("<tool_call>"),
            ToolFormat::Mistral => text.find("[TOOL_CALLS]"),
            ToolFormat::BareJson => {
                let trimmed = text.trim_start();
                (trimmed.starts_with('{') || trimmed.starts_with("<|python_tag|>")).then_some(0)
            }
        }
    }

    /// The marker that opens a call, for holding back text that may be its beginning.
    fn marker(self) -> &'static str {
        match self {
            ToolFormat::Tagged => "<tool_call>",
            ToolFormat::Mistral => "[TOOL_CALLS]",
            ToolFormat::BareJson => "<|python_tag|>",
        }
    }

    /// The calls in `held` (text from the start of a call on); `None` when it is not one.
    fn parse(self, held: &str) -> Option<Vec<ToolCall>> {
        let calls: Vec<Value> = match self {
            ToolFormat::Tagged => {
                let mut calls = Vec::new();
                let mut rest = held;
                while let Some(at) = rest.find("<tool_call>") {
                    if !rest[..at].trim().is_empty() {
                        return None;
                    }
                    let body = &rest[at + "<tool_call>".len()..];
                    let end = body.find("</tool_call>").unwrap_or(body.len());
                    calls.push(serde_json::from_str(body[..end].trim()).ok()?);
                    rest = body.get(end + "</tool_call>".len()..).unwrap_or("");
                }
                if !rest.trim().is_empty() {
                    return None;
                }
                calls
            }
            ToolFormat::Mistral => {
                let body = held.trim().strip_prefix("[TOOL_CALLS]")?;
                match serde_json::from_str(body.trim()).ok()? {
                    Value::Array(calls) => calls,
                    one @ Value::Object(_) => vec![one],
                    _ => return None,
                }
            }
            ToolFormat::BareJson => {
                let body = held.trim();
                let body = body.strip_prefix("<|python_tag|>").unwrap_or(body);
                vec![serde_json::from_str(body.trim()).ok()?]
            }
        };
        let calls: Option<Vec<ToolCall>> = calls.iter().map(ToolCall::from_value).collect();
        calls.filter(|c| !c.is_empty())
    }
}

/// A function call the model made.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ToolCall {
    pub name: String,
    /// The arguments as JSON text (as OpenAI's API carries them).
    pub arguments: String,
}

impl ToolCall {
    fn from_value(v: &Value) -> Option<ToolCall> {
        let name = v["name"].as_str()?.to_string();
        let arguments = match v.get("arguments").or_else(|| v.get("parameters")) {
            Some(Value::String(s)) => s.clone(),
            Some(args) => args.to_string(),
            None => "{}".to_string(),
        };
        Some(ToolCall { name, arguments })
    }
}

/// Passes generated text on, holding back what may be a tool call; at the end, the calls
/// found, or the held text as text when it was none.
#[derive(Debug)]
pub(crate) struct ToolFilter {
    format: Option<ToolFormat>,
    text: String,
    /// Bytes of `text` handed on.
    emitted: usize,
    /// Where a call starts, once one has.
    held_from: Option<usize>,
}

impl ToolFilter {
    pub fn new(format: Option<ToolFormat>) -> ToolFilter {
        ToolFilter {
            format,
            text: String::new(),
            emitted: 0,
            held_from: None,
        }
    }

    /// Takes new text and returns what can be shown now.
    pub fn push(&mut self, piece: &str) -> String {
        self.text.push_str(piece);
        let Some(format) = self.format else {
            self.emitted = self.text.len();
            return piece.to_string();
        };
        let at_start = self.text[..self.emitted].trim().is_empty();
        if self.held_from.is_none() && (format != ToolFormat::BareJson || at_start) {
            self.held_from = format
                .start(&self.text[self.emitted..])
                .map(|at| self.emitted + at);
        }
        let safe = match self.held_from {
            Some(at) => at,
            None => self.text.len() - partial_suffix(&self.text[self.emitted..], format.marker()),
        };
        let safe = if format == ToolFormat::BareJson && self.text.trim().is_empty() {
            self.emitted
        } else {
            safe.max(self.emitted)
        };
        let out = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        out
    }

    /// Ends the text: what is left to show, and the tool calls.
    pub fn finish(&mut self) -> (String, Vec<ToolCall>) {
        let held = &self.text[self.emitted..];
        let calls = match (self.format, self.held_from) {
            (Some(format), Some(_)) => format.parse(held),
            _ => None,
        };
        match calls {
            Some(calls) => {
                self.emitted = self.text.len();
                (String::new(), calls)
            }
            None => {
                let rest = held.to_string();
                self.emitted = self.text.len();
                (rest, Vec::new())
            }
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `marker`.
fn partial_suffix(text: &str, marker: &str) -> usize {
    (1..marker.len())
        .rev()
        .find(|&n| {
            text.len() >= n
                && text.is_char_boundary(text.len() - n)
                && marker.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

/// Template variables for a request: its tools (none when `tools` is empty).
pub(crate) fn template_extra(messages: Vec<Value>, tools: Vec<Value>) -> Value {
    let mut extra = Map::new();
    extra.insert("messages".into(), Value::Array(messages));
    if !tools.is_empty() {
        extra.insert("tools".into(), Value::Array(tools));
    }
    Value::Object(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(format: Option<ToolFormat>, pieces: &[&str]) -> (String, Vec<ToolCall>) {
        let mut f = ToolFilter::new(format);
        let mut shown: String = pieces.iter().map(|p| f.push(p)).collect();
        let (rest, calls) = f.finish();
        shown.push_str(&rest);
        (shown, calls)
    }

    #[test]
    fn tagged_calls_are_held_back_and_parsed() {
        let (shown, calls) = run(
            Some(ToolFormat::Tagged),
            &["Let me check. <tool", "_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"],
        );
        assert_eq!(shown, "Let me check. ");
        assert_eq!(
            calls,
            vec![ToolCall {
                name: "weather".into(),
                arguments: "{\"city\":\"Paris\"}".into()
            }]
        );
    }

    #[test]
    fn text_that_only_looks_like_a_call_is_kept() {
        let (shown, calls) = run(Some(ToolFormat::Tagged), &["a <tool", "box> b"]);
        assert_eq!((shown.as_str(), calls.len()), ("a <toolbox> b", 0));
        let broken = "<tool_call>{not json</tool_call>";
        let (shown, calls) = run(Some(ToolFormat::Tagged), &[broken]);
        assert_eq!((shown.as_str(), calls.len()), (broken, 0));
        let (shown, _) = run(None, &["<tool_call>{}</tool_call>"]);
        assert_eq!(shown, "<tool_call>{}</tool_call>");
    }

    #[test]
    fn mistral_and_bare_json_calls_are_parsed() {
        let (_, calls) = run(
            Some(ToolFormat::Mistral),
            &["[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": \"{\\\"x\\\":1}\"}]"],
        );
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].arguments, "{\"x\":1}");
        let (shown, calls) = run(
            Some(ToolFormat::BareJson),
            &[" {\"name\": \"f\", ", "\"parameters\": {\"q\": 2}}"],
        );
        assert_eq!(
            (shown.as_str(), calls[0].arguments.as_str()),
            ("", "{\"q\":2}")
        );
        let (shown, calls) = run(Some(ToolFormat::BareJson), &["Hello {there}"]);
        assert_eq!((shown.as_str(), calls.len()), ("Hello {there}", 0));
    }

    #[test]
    fn formats_are_read_from_templates() {
        assert_eq!(
            ToolFormat::of("{% if tools %}<tool_call>{% endif %}"),
            Some(ToolFormat::Tagged)
        );
        assert_eq!(ToolFormat::of("[TOOL_CALLS]"), Some(ToolFormat::Mistral));
        assert_eq!(ToolFormat::of("<|im_start|>"), None);
    }

    #[test]
    fn messages_are_checked_and_shaped_for_templates() {
        let messages = vec![
            json!({"role": "developer", "content": "Be brief."}),
            json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]}),
            json!({"role": "tool", "tool_call_id": "c1", "content": "42"}),
        ];
        let out = template_messages(&messages).unwrap();
        assert_eq!(out[0]["role"], "system");
        assert_eq!(out[1]["content"], "a\nb");
        assert_eq!(out[2]["tool_calls"][0]["function"]["arguments"]["x"], 1);
        assert_eq!(out[3]["tool_call_id"], "c1");
        let e = template_messages(&[json!({"role": "robot", "content": "x"})]).unwrap_err();
        assert_eq!(e.fields[0].field, "messages[0].role");
        let e = template_messages(&[json!({"role": "user", "content": [{"type": "image_url"}]})])
            .unwrap_err();
        assert_eq!(e.fields[0].field, "messages[0].content[0].type");
        let e = template_messages(&[json!({"role": "user"})]).unwrap_err();
        assert_eq!(e.fields[0].field, "messages[0].content");
        assert!(template_messages(&[]).is_err());
        assert!(template_tools(&[json!({"type": "function", "function": {"name": "f"}})]).is_ok());
        assert!(template_tools(&[json!({"type": "retrieval"})]).is_err());
    }
}
