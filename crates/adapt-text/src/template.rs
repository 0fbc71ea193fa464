//! [`ChatTemplate`]: renders a conversation with a model's Jinja chat template, the way Hugging
//! Face transformers' `apply_chat_template(..., tokenize=False)` does.
//!
//! The environment matches transformers': `trim_blocks` and `lstrip_blocks` on, trailing
//! newline of the template dropped, lenient undefined values (like Jinja2's default
//! `Undefined`), loop controls (`break`/`continue`), `raise_exception(msg)`, `strftime_now(fmt)`,
//! a `tojson` filter that calls Python's `json.dumps` conventions (no HTML escaping, `indent`,
//! `sort_keys`, `separators`, `ensure_ascii`), Python string/dict methods (`.strip()`,
//! `.startswith()`, `.split()`, `.items()`, …), values printed as Python prints them (`None`,
//! `True`, `['a']`), and `{% generation %}` blocks rendered as plain content.

use std::fmt::Write;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Serde, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::py::{self, JsonOptions};
use crate::TextError;

const TEMPLATE_NAME: &str = "chat_template";
/// Marks errors raised by the template's own `raise_exception`.
const RAISED: &str = "\u{1}raise_exception\u{1}";

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, …
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl ChatTemplate {
    /// Compiles `source`. `bos_token` and `eos_token` are visible to the template as
    /// `bos_token` / `eos_token` (as transformers passes the tokenizer's special tokens).
    pub fn new(
        source: &str,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<ChatTemplate, TextError> {
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .map_err(|e| TextError::TemplateSyntax {
                message: describe(&e),
            })?;
        let mut env = Environment::new();
        env.set_syntax(syntax);
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(|out, state, value| match value.kind() {
            ValueKind::Undefined | ValueKind::String => {
                minijinja::escape_formatter(out, state, value)
            }
            _ => {
                let text = py::py_str(value).unwrap_or_default();
                out.write_str(&text).map_err(Error::from)
            }
        });
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_filter("string", |v: Value| py::py_str(&v).unwrap_or_default());
        env.add_template_owned(TEMPLATE_NAME, without_generation_tags(source))
            .map_err(|e| TextError::TemplateSyntax {
                message: describe(&e),
            })?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.map(str::to_string),
            eos_token: eos_token.map(str::to_string),
        })
    }

    /// Renders `messages`; with `add_generation_prompt`, ends with the template's cue for the
    /// assistant's reply.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TextError> {
        self.render_with(messages, add_generation_prompt, &serde_json::Value::Null)
    }

    /// Like [`render`](Self::render), with extra template variables from the JSON object
    /// `extra` (e.g. `{"tools": [...], "enable_thinking": false}`); they override the defaults.
    pub fn render_with(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: &serde_json::Value,
    ) -> Result<String, TextError> {
        let mut ctx = serde_json::Map::new();
        if let Some(bos) = &self.bos_token {
            ctx.insert("bos_token".into(), bos.clone().into());
        }
        if let Some(eos) = &self.eos_token {
            ctx.insert("eos_token".into(), eos.clone().into());
        }
        ctx.insert(
            "messages".into(),
            serde_json::to_value(messages).unwrap_or_default(),
        );
        ctx.insert("tools".into(), serde_json::Value::Null);
        ctx.insert("documents".into(), serde_json::Value::Null);
        ctx.insert("add_generation_prompt".into(), add_generation_prompt.into());
        match extra {
            serde_json::Value::Null => {}
            serde_json::Value::Object(o) => {
                ctx.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            other => {
                return Err(TextError::TemplateRender {
                    message: format!("extra template variables must be a JSON object, not {other}"),
                })
            }
        }
        let template =
            self.env
                .get_template(TEMPLATE_NAME)
                .map_err(|e| TextError::TemplateRender {
                    message: describe(&e),
                })?;
        template
            .render(Value::from(Serde(serde_json::Value::Object(ctx))))
            .map_err(|e| match e.detail().and_then(|d| d.strip_prefix(RAISED)) {
                Some(message) => TextError::TemplateRaised {
                    message: message.to_string(),
                },
                None => TextError::TemplateRender {
                    message: describe(&e),
                },
            })
    }
}

/// The error with its causes, on one line.
fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let _ = write!(s, ": {cause}");
        source = cause.source();
    }
    s
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("{RAISED}{message}"),
    ))
}

fn strftime_now(format: String) -> Result<String, Error> {
    use chrono::format::{Item, StrftimeItems};
    let items: Vec<Item> = StrftimeItems::new(&format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: invalid format {format:?}"),
        ));
    }
    let now = chrono::Local::now();
    let mut out = String::new();
    write!(out, "{}", now.format_with_items(items.into_iter())).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: cannot format {format:?}"),
        )
    })?;
    Ok(out)
}

fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let mut opts = JsonOptions::default();
    if let Some(indent) = kwargs.get::<Option<Value>>("indent")? {
        opts.indent = match indent.kind() {
            ValueKind::Number => {
                Some(" ".repeat(indent.as_i64().unwrap_or(0).clamp(0, 64) as usize))
            }
            ValueKind::String => Some(indent.as_str().unwrap_or_default().to_string()),
            _ => None,
        };
        if opts.indent.is_some() {
            opts.item_sep = ",".into();
        }
    }
    if let Some(seps) = kwargs.get::<Option<Value>>("separators")? {
        if !seps.is_none() {
            let item = seps.get_item(&Value::from(0))?;
            let key = seps.get_item(&Value::from(1))?;
            opts.item_sep = item.as_str().unwrap_or(",").to_string();
            opts.key_sep = key.as_str().unwrap_or(":").to_string();
        }
    }
    opts.sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    opts.ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    Ok(Value::from(py::json_dumps(&value, &opts)?))
}

/// transformers' `{% generation %}…{% endgeneration %}` only marks assistant text for masks;
/// it renders its body unchanged. Rewriting the tags as an always-true `if` keeps the
/// whitespace control of the original tags.
fn without_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        match rewrite_generation_tag(tag) {
            Some((replacement, consumed)) => {
                out.push_str(&replacement);
                rest = &tag[consumed..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// If `tag` starts with a `generation`/`endgeneration` block tag, its replacement and length.
fn rewrite_generation_tag(tag: &str) -> Option<(String, usize)> {
    // The closing `%}` comes after the opening `{%` (in `{%}` the two overlap).
    let end = tag[2..].find("%}")? + 4;
    let inner = &tag[2..end - 2];
    let (open_mod, body) = match inner.chars().next() {
        Some(c @ ('-' | '+')) => (c.to_string(), &inner[1..]),
        _ => (String::new(), inner),
    };
    let (body, close_mod) = match body.chars().last() {
        Some(c @ ('-' | '+')) => (&body[..body.len() - 1], c.to_string()),
        _ => (body, String::new()),
    };
    let keyword = match body.trim() {
        "generation" => "if true",
        "endgeneration" => "endif",
        _ => return None,
    };
    Some((format!("{{%{open_mod} {keyword} {close_mod}%}}"), end))
}

#[cfg(test)]
mod tests;
