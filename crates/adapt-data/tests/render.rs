//! Golden tests of rendering and loss masks on the real SmolLM2 ChatML template: every
//! assistant turn of a multi-turn chat is trained, tools reach the template, completions train
//! the completion, mask-prompt off trains everything, masks fall on token boundaries, and a
//! template that does not render prefixes as prefixes is still masked correctly.

mod common;

use adapt_data::pipeline::marked_text;
use adapt_data::{At, Example, RenderOptions, TextModel};
use serde_json::json;

const SYSTEM: &str = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

fn chat(messages: serde_json::Value, tools: Option<serde_json::Value>) -> Example {
    Example::Chat {
        messages: messages.as_array().unwrap().clone(),
        tools,
    }
}

fn marked_with(model: &TextModel, example: &Example, opts: &RenderOptions) -> String {
    let t = model
        .tokenize(example, opts, &At::new("test.jsonl", 1))
        .unwrap();
    assert_eq!(t.tokens.len(), t.mask.len());
    marked_text(model, &t).unwrap()
}

fn marked(example: &Example, opts: &RenderOptions) -> String {
    marked_with(common::smollm2(), example, opts)
}

fn multi_turn() -> Example {
    chat(
        json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"}
        ]),
        None,
    )
}

#[test]
fn every_assistant_turn_of_a_multi_turn_chat_is_trained() {
    assert_eq!(
        marked(&multi_turn(), &RenderOptions::default()),
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\n«Hello!<|im_end|>»\n<|im_start|>user\n2+2?<|im_end|>\n\
         <|im_start|>assistant\n«4<|im_end|>»\n"
    );
}

#[test]
fn tool_turns_are_context_and_assistant_turns_around_them_are_trained() {
    let ex = chat(
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Let me check."},
            {"role": "tool", "content": "sunny, 21C"},
            {"role": "assistant", "content": "Sunny and 21C."}
        ]),
        Some(json!([{"type": "function", "function": {"name": "weather"}}])),
    );
    assert_eq!(
        marked(&ex, &RenderOptions::default()),
        format!(
            "{SYSTEM}<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n\
             «Let me check.<|im_end|>»\n<|im_start|>tool\nsunny, 21C<|im_end|>\n\
             <|im_start|>assistant\n«Sunny and 21C.<|im_end|>»\n"
        )
    );
}

#[test]
fn tools_and_tool_calls_reach_the_template() {
    let tokenizer = common::smollm2().tokenizer().clone();
    let template = "{% if tools %}<|im_start|>system\nTools: {{ tools|tojson }}<|im_end|>\n{% endif %}\
        {% for m in messages %}<|im_start|>{{ m.role }}\n\
        {% if m.tool_calls %}{% for c in m.tool_calls %}<call>{{ c.function.name }}</call>{% endfor %}\
        {% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}\
        {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    let model = TextModel::with_template(tokenizer, Some(template)).unwrap();
    let ex = chat(
        json!([
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": {}}}]},
            {"role": "tool", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."}
        ]),
        Some(json!([{"name": "weather"}])),
    );
    assert_eq!(
        marked_with(&model, &ex, &RenderOptions::default()),
        "<|im_start|>system\nTools: [{\"name\": \"weather\"}]<|im_end|>\n<|im_start|>user\n\
         Weather?<|im_end|>\n<|im_start|>assistant\n«<call>weather</call><|im_end|>»\n\
         <|im_start|>tool\nsunny<|im_end|>\n<|im_start|>assistant\n«Sunny.<|im_end|>»\n"
    );
}

#[test]
fn completions_train_the_completion_and_its_end_of_turn() {
    let ex = Example::Completion {
        prompt: "2+2?".into(),
        completion: "4".into(),
    };
    let opts = RenderOptions::default();
    assert_eq!(
        marked(&ex, &opts),
        format!("{SYSTEM}<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n«4<|im_end|>»\n")
    );
    // Mask-prompt off: everything is trained.
    let all = RenderOptions {
        mask_prompt: false,
        ..opts
    };
    assert_eq!(
        marked(&ex, &all),
        format!("«{SYSTEM}<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n»")
    );
    // Without the chat template: prompt, then completion plus EOS.
    let raw = RenderOptions {
        completions_as_chat: false,
        ..opts
    };
    assert_eq!(marked(&ex, &raw), "2+2?«4<|im_end|>»");
    let text = Example::Text {
        text: "Plain text.".into(),
    };
    assert_eq!(marked(&text, &opts), "«Plain text.<|im_end|>»");
}

#[test]
fn masks_fall_on_token_boundaries_as_generation_sees_them() {
    let model = common::smollm2();
    let at = At::new("test.jsonl", 1);
    let opts = RenderOptions::default();
    let im_end = model.tokenizer().token_to_id("<|im_end|>").unwrap();
    // An ordinary chat: segment-by-segment tokens are exactly the whole rendering's tokens, and
    // exactly the two assistant turns' <|im_end|> tokens are trained.
    let ex = multi_turn();
    let segments = model.segments(&ex, &opts, &at).unwrap();
    let whole: String = segments.iter().map(|s| s.text.as_str()).collect();
    let t = model.tokenize(&ex, &opts, &at).unwrap();
    assert_eq!(t.tokens, model.tokenizer().encode(&whole, false).unwrap());
    let trained_ends = t
        .tokens
        .iter()
        .zip(&t.mask)
        .filter(|(&id, &m)| id == im_end && m);
    assert_eq!(trained_ends.count(), 2);
    // A reply that starts with newlines: the prompt is tokenized on its own, as at inference
    // (where the model generates the newlines after "assistant\n"), so the trained tokens are
    // the ones the model would generate — not BPE merges across the boundary.
    let ex = chat(
        json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "\n\nnew lines"}]),
        None,
    );
    let t = model.tokenize(&ex, &opts, &at).unwrap();
    let prompt = format!("{SYSTEM}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    let prompt_ids = model.tokenizer().encode(&prompt, false).unwrap();
    assert_eq!(&t.tokens[..prompt_ids.len()], &prompt_ids[..]);
    assert!(t.mask[..prompt_ids.len()].iter().all(|&m| !m));
    let reply = model
        .tokenizer()
        .encode("\n\nnew lines<|im_end|>", false)
        .unwrap();
    assert_eq!(
        &t.tokens[prompt_ids.len()..prompt_ids.len() + reply.len()],
        &reply[..]
    );
    assert!(t.mask[prompt_ids.len()..prompt_ids.len() + reply.len()]
        .iter()
        .all(|&m| m));
}

#[test]
fn a_template_that_rewrites_earlier_turns_is_masked_by_content() {
    let tokenizer = common::smollm2().tokenizer().clone();
    // The last assistant turn is rendered differently from the same turn with more after it,
    // so prefixes are not prefixes.
    let template = "{% for m in messages %}{% if m.role == 'assistant' and loop.last %}[final] {{ m.content }}\
        {% elif m.role == 'assistant' %}[a] {{ m.content }}{% else %}[u] {{ m.content }}{% endif %}\n{% endfor %}\
        {% if add_generation_prompt %}[a] {% endif %}";
    let model = TextModel::with_template(tokenizer, Some(template)).unwrap();
    assert_eq!(
        marked_with(&model, &multi_turn(), &RenderOptions::default()),
        // trim_blocks eats the newlines; the template writes no EOS, so one is added, trained.
        "[u] You are terse.[u] Hi[a] «Hello!»[u] 2+2?[final] «4<|im_end|>»"
    );
}

#[test]
fn a_template_error_names_the_line() {
    let tokenizer = common::smollm2().tokenizer().clone();
    let template = "{{ raise_exception('roles must alternate') }}";
    let model = TextModel::with_template(tokenizer, Some(template)).unwrap();
    let err = model
        .tokenize(
            &multi_turn(),
            &RenderOptions::default(),
            &At::new("chats.jsonl", 7),
        )
        .unwrap_err();
    assert_eq!(err.code(), "data.chat_template");
    assert_eq!(
        err.to_string(),
        "chats.jsonl:7: the chat template failed: the chat template rejected the conversation: \
         roles must alternate"
    );
}

#[test]
fn completions_render_like_the_template_even_when_it_edits_contents() {
    // Completions use a pre-rendered frame only when the template treats contents as opaque;
    // this one trims them, so each completion is rendered for real.
    let tokenizer = common::smollm2().tokenizer().clone();
    let template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}\
        {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    let model = TextModel::with_template(tokenizer, Some(template)).unwrap();
    let ex = Example::Completion {
        prompt: "  2+2?  ".into(),
        completion: " 4 ".into(),
    };
    assert_eq!(
        marked_with(&model, &ex, &RenderOptions::default()),
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n«4<|im_end|>»\n"
    );
}
