//! Hugging Face chat-template semantics. Expected strings were produced by transformers'
//! own template compiler (Jinja2 3.1.6) with the same templates and context.

use super::*;

fn messages() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("system", "  hello world  "),
        ChatMessage::new("user", "hi there"),
        ChatMessage::new("assistant", "yo"),
    ]
}

fn render(source: &str, extra: serde_json::Value) -> Result<String, TextError> {
    ChatTemplate::new(source, Some("<s>"), Some("</s>"))?.render_with(&messages(), false, &extra)
}

fn ok(source: &str) -> String {
    render(source, serde_json::Value::Null).unwrap_or_else(|e| format!("ERROR {e}"))
}

#[test]
fn trim_and_lstrip_blocks() {
    let src = "{% for m in messages %}\n    {% if m.role == 'user' %}\n  U: {{ m.content }}\n    {% else %}\n  A: {{ m.content }}\n    {% endif %}\n{% endfor %}\n";
    assert_eq!(ok(src), "  A:   hello world  \n  U: hi there\n  A: yo\n");
    let src = "a  {%- if true -%}  b  {%- endif -%}  c\n{%+ if true %}d{% endif %}\n";
    assert_eq!(ok(src), "abc\nd");
}

#[test]
fn loop_variables_and_controls() {
    let src = "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %} {% endfor %}";
    assert_eq!(ok(src), "1/3F 2/3 3/3L ");
    let src = "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}";
    assert_eq!(ok(src), "0134");
}

#[test]
fn python_string_and_dict_methods() {
    let src = "{% for m in messages %}[{{ m.content.strip() }}|{{ m.content.startswith('  he') }}|{{ m.content.split() }}|{{ m.role.upper() }}|{{ m.content.replace('l', 'L') }}]{% endfor %}";
    assert_eq!(
        ok(src),
        "[hello world|True|['hello', 'world']|SYSTEM|  heLLo worLd  ][hi there|False|['hi', 'there']|USER|hi there][yo|False|['yo']|ASSISTANT|yo]"
    );
    let src = "{% for k, v in extra.items() %}{{ k }}={{ v }};{% endfor %}{{ extra.get('missing', 'dflt') }}";
    let extra = serde_json::json!({"extra": {"b": 1, "a": [1, "x", null, true], "c": {"k": 2.5}}});
    assert_eq!(
        render(src, extra).ok().as_deref(),
        Some("b=1;a=[1, 'x', None, True];c={'k': 2.5};dflt")
    );
}

#[test]
fn values_print_as_python_does() {
    let src = "{{ none }} {{ true }} {{ false }} {{ [1, 'a'] }} {{ 3 / 2 }} {{ 7 // 2 }} {{ 2.0 }} {{ undefined_var }}|{{ messages|length }}";
    assert_eq!(ok(src), "None True False [1, 'a'] 1.5 3 2.0 |3");
    let src = "{% set sys = messages[0] if messages[0].role == 'system' else none %}{% for m in messages[1:] %}{{ m.role }} {% endfor %}{{ sys }}";
    assert_eq!(
        ok(src),
        "user assistant {'role': 'system', 'content': '  hello world  '}"
    );
}

#[test]
fn tojson_is_pythons_json_dumps() {
    let src = "{{ extra|tojson }}\n{{ extra|tojson(indent=2) }}\n{{ '<&>\"é'|tojson }}";
    let extra = serde_json::json!({"extra": {"name": "get_weather", "params": {"city": "Zürich", "units": ["c", "f"]}, "n": null, "t": true, "x": 1.5}});
    assert_eq!(
        render(src, extra).ok().as_deref(),
        Some("{\"name\": \"get_weather\", \"params\": {\"city\": \"Zürich\", \"units\": [\"c\", \"f\"]}, \"n\": null, \"t\": true, \"x\": 1.5}\n{\n  \"name\": \"get_weather\",\n  \"params\": {\n    \"city\": \"Zürich\",\n    \"units\": [\n      \"c\",\n      \"f\"\n    ]\n  },\n  \"n\": null,\n  \"t\": true,\n  \"x\": 1.5\n}\n\"<&>\\\"é\"")
    );
}

#[test]
fn namespace_filters_and_undefined() {
    let src = "{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% if m.role == 'assistant' %}{% set ns.found = true %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }}";
    assert_eq!(ok(src), "True 1");
    let src = "{{ messages[0].content|trim }}|{{ 'a,b'.split(',')|join('+') }}|{{ messages|map(attribute='role')|list }}|{{ 'x' * 3 }}|{{ messages[-1].content|length }}|{{ 'Hello World'.title() }}|{{ '%s-%d'|format('a', 3) }}";
    assert_eq!(
        ok(src),
        "hello world|a+b|['system', 'user', 'assistant']|xxx|2|Hello World|a-3"
    );
    let src = "[{{ missing }}][{% if missing %}yes{% else %}no{% endif %}][{% for x in missing %}{{ x }}{% endfor %}][{{ missing is defined }}][{{ tools is none }}][{{ bos_token }}]";
    assert_eq!(ok(src), "[][no][][False][True][<s>]");
    // Like Jinja2's default Undefined, an attribute of an undefined value is an error.
    let err = render("{{ missing.attr }}", serde_json::Value::Null).expect_err("undefined attr");
    assert_eq!(err.code(), "text.template_render");
}

#[test]
fn generation_blocks_render_their_body() {
    let src = "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}\n{{ m.content }}\n{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}";
    assert_eq!(ok(src), "  hello world  hi thereyo\n");
    assert_eq!(
        without_generation_tags("{%- generation -%}x{%endgeneration%}{% if %}"),
        "{%- if true -%}x{% endif %}{% if %}"
    );
}

/// Found by fuzzing (`fuzz/fuzz_targets/chat_template.rs`): a `{%}` — the tag's opening and
/// closing overlap — made the generation-tag rewrite slice backwards and panic.
#[test]
fn overlapping_tag_marks_are_a_syntax_error_not_a_panic() {
    assert_eq!(without_generation_tags("{%}"), "{%}");
    assert_eq!(without_generation_tags("a{%}b%}"), "a{%}b%}");
    assert_eq!(without_generation_tags("{%generation%}"), "{% if true %}");
    for source in [
        "{%}",
        "{% endif {% macro m(x) %{ x }}{% endmacro %(x) %{%}",
        "{%-}",
        "{%+%}",
    ] {
        let err = ChatTemplate::new(source, None, None).unwrap_err();
        assert_eq!(err.code(), "text.template_syntax", "{source}: {err}");
    }
}

#[test]
fn raise_exception_carries_the_message() {
    let src = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}";
    let err = render(src, serde_json::Value::Null).expect_err("raises");
    assert_eq!(err.code(), "text.template_raised");
    assert!(
        matches!(&err, TextError::TemplateRaised { message } if message == "Conversation roles must alternate user/assistant/user/assistant/...")
    );
    assert_eq!(
        err.to_string(),
        "the chat template rejected the conversation: Conversation roles must alternate user/assistant/user/assistant/..."
    );
}

#[test]
fn syntax_errors_and_bad_context() {
    let err = ChatTemplate::new("{% for m in messages %}", None, None).expect_err("syntax");
    assert_eq!(err.code(), "text.template_syntax");
    let err = render("x", serde_json::json!([1])).expect_err("context must be an object");
    assert_eq!(err.code(), "text.template_render");
}

#[test]
fn strftime_now_and_extra_context() {
    let year = ok("{{ strftime_now('%Y') }}");
    assert!(year.len() == 4 && year.starts_with('2'), "{year}");
    let err = render("{{ strftime_now('%Q') }}", serde_json::Value::Null).expect_err("bad format");
    assert_eq!(err.code(), "text.template_render");
    let src = "{% if tools %}{% for t in tools %}{{ t.name }};{% endfor %}{% endif %}{{ add_generation_prompt }}";
    let extra = serde_json::json!({"tools": [{"name": "a"}, {"name": "b"}]});
    assert_eq!(render(src, extra).ok().as_deref(), Some("a;b;False"));
}

#[test]
fn generation_prompt_and_special_tokens() {
    let t = ChatTemplate::new(
        "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
        Some("<s>"),
        None,
    )
    .expect("compiles");
    let msgs = [ChatMessage::new("user", "hi")];
    assert_eq!(
        t.render(&msgs, true).ok().as_deref(),
        Some("<s>user: hiassistant:")
    );
    assert_eq!(t.render(&msgs, false).ok().as_deref(), Some("<s>user: hi"));
    let json = serde_json::to_string(&msgs[0]).unwrap_or_default();
    assert_eq!(json, r#"{"role":"user","content":"hi"}"#);
}
