//! Chat-template rendering with hostile inputs: a template (before the input's first 0 byte;
//! empty: the real model's own) and a conversation (after it: a JSON list of messages, else
//! the bytes as a user's and an assistant's text), rendered with and without the generation
//! prompt, with tools. A model file's template and a person's messages are both untrusted:
//! any input must give text or an error, never a panic or a hang.
#![no_main]

use adapt_text::{ChatMessage, ChatTemplate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (template, conversation) = adapt_fuzz::split(data);
    let template = String::from_utf8_lossy(template);
    let source = if template.is_empty() {
        adapt_fuzz::real_template()
    } else {
        &template
    };
    let Ok(template) = ChatTemplate::new(source, Some("<s>"), Some("</s>")) else {
        return;
    };
    let messages = serde_json::from_slice::<Vec<ChatMessage>>(conversation).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(conversation);
        vec![
            ChatMessage::new("system", "You are helpful."),
            ChatMessage::new("user", text.clone()),
            ChatMessage::new("assistant", text),
        ]
    });
    let _ = template.render(&messages, true);
    let _ = template.render(&messages, false);
    let tools = serde_json::json!({"tools": [{"type": "function", "function": {
        "name": "lookup", "parameters": {"type": "object", "properties": {}}}}]});
    let _ = template.render_with(&messages, true, &tools);
});
