//! A chat rendered with the model's chat template, split into segments that are trained or
//! not: every assistant turn is located by rendering prefixes of the conversation (see the
//! [`render`](super) module's overview). Without a template, plain `role: content` lines.

use adapt_text::ChatTemplate;
use serde_json::{json, Value};

use super::segment::{seg, Segment};
use crate::error::{At, DataError};

/// Without a template: `role: content` lines, assistant contents trained.
pub(super) fn plain_chat(messages: &[Value]) -> Vec<Segment> {
    let mut out = Vec::new();
    for m in messages {
        let role = m["role"].as_str().unwrap_or_default();
        let content = m["content"].as_str().unwrap_or_default();
        out.push(seg(&format!("{role}: "), false));
        out.push(seg(content, role == "assistant"));
        out.push(seg("\n", false));
    }
    out
}

pub(super) fn chat_segments(
    template: &ChatTemplate,
    messages: &[Value],
    tools: Option<&Value>,
    at: &At,
) -> Result<Vec<Segment>, DataError> {
    let render = |msgs: &[Value], gen: bool| -> Result<String, DataError> {
        let mut extra = json!({ "messages": msgs });
        if let Some(t) = tools {
            extra["tools"] = t.clone();
        }
        template
            .render_with(&[], gen, &extra)
            .map_err(|e| DataError::ChatTemplate {
                at: at.clone(),
                message: e.to_string(),
            })
    };
    let full = render(messages, false)?;
    let align = |message: String| DataError::MaskAlignment {
        at: at.clone(),
        message,
    };
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m["role"] != "assistant" {
            continue;
        }
        let floor = spans.last().map_or(0, |s| s.1);
        let content = m["content"].as_str().unwrap_or_default();
        let before = render(&messages[..i], true)?;
        let start = if full.starts_with(&before) && before.len() >= floor {
            before.len()
        } else {
            let plain = render(&messages[..i], false)?;
            let from = if full.starts_with(&plain) {
                plain.len().max(floor)
            } else {
                floor
            };
            match full[from..].find(content) {
                Some(k) if !content.is_empty() => from + k,
                _ => {
                    return Err(align(format!(
                        "the template does not render messages[{i}]'s prefix as a prefix"
                    )))
                }
            }
        };
        let after = if i + 1 == messages.len() {
            full.clone()
        } else {
            render(&messages[..=i], false)?
        };
        let mut end = if full.starts_with(&after) && after.len() >= start {
            after.len()
        } else {
            match full[start..].find(content) {
                Some(k) => start + k + content.len(),
                None => {
                    return Err(align(format!(
                        "messages[{i}]'s content does not appear in the rendered chat"
                    )))
                }
            }
        };
        while end > start && full.as_bytes()[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        if end > start {
            spans.push((start, end));
        }
    }
    if spans.is_empty() {
        return Err(align(
            "no assistant turn is visible in the rendered chat".into(),
        ));
    }
    let mut out = Vec::with_capacity(spans.len() * 2 + 1);
    let mut pos = 0;
    for (s, e) in spans {
        out.push(seg(&full[pos..s], false));
        out.push(seg(&full[s..e], true));
        pos = e;
    }
    out.push(seg(&full[pos..], false));
    Ok(out)
}
