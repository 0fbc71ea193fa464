//! The server on 127.0.0.1 over a tiny random model: chat and text completions whole and
//! streamed (the same text either way), log probabilities, cached prompt tokens on a second
//! turn and after a restart, adapters by model name swapped on one base, OpenAI-shaped errors
//! for bad requests, the key check, and — on the real SmolLM2, whose replies take long enough
//! to overlap — the bounded queue and cancellation when a client leaves.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use adapt_api::ServerSettings;
use common::{assert_error, lock, random_adapter, raw, request, tiny_model, Harness};
use serde_json::{json, Value};

fn chat(base: &str, messages: Value, max_tokens: usize) -> Value {
    json!({"model": base, "messages": messages, "max_tokens": max_tokens, "temperature": 0})
}

fn content(reply: &Value) -> String {
    reply["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn completions_whole_streamed_with_logprobs_and_cached_turns() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let h = Harness::start(
        &dir.path().join("data"),
        &model,
        None,
        ServerSettings::default(),
    );
    assert_eq!(h.base, "tiny");
    let (status, health) = h.get("/health");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    let first = json!([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a color."}]);
    let (status, reply) = h.post("/v1/chat/completions", &chat(&h.base, first.clone(), 6));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["object"], "chat.completion");
    let usage = &reply["usage"];
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    assert_eq!(usage["completion_tokens"], 6);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
    let text = content(&reply);

    // The next turn resends the history: everything up to the new message comes from the cache.
    let mut second = first.as_array().unwrap().clone();
    second.push(json!({"role": "assistant", "content": text}));
    second.push(json!({"role": "user", "content": "Another one."}));
    let (_, reply2) = h.post("/v1/chat/completions", &chat(&h.base, json!(second), 4));
    let cached = reply2["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached >= prompt, "cached {cached} of {}", reply2["usage"]);

    // Streamed: the same text, chunk by chunk, the usage last, then [DONE].
    let mut body = chat(&h.base, first.clone(), 6);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, events) = h.stream("/v1/chat/completions", &body);
    assert_eq!(status, 200);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, text);
    let last = chunks.last().unwrap();
    assert!(last["choices"].as_array().unwrap().is_empty());
    assert_eq!(
        last["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(),
        Some(prompt - 1)
    );
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "length"
    );

    // Log probabilities: one per generated token, the alternatives most likely first.
    let mut body = chat(&h.base, first, 5);
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(3);
    let (_, reply) = h.post("/v1/chat/completions", &body);
    let tokens = reply["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    assert_eq!(tokens.len(), 5);
    for t in tokens {
        let top: Vec<f64> = t["top_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["logprob"].as_f64().unwrap())
            .collect();
        assert_eq!(top.len(), 3);
        assert!(top.windows(2).all(|w| w[0] >= w[1]) && t["logprob"].as_f64().unwrap() <= 0.0);
        // Greedy: the token picked is the most likely.
        assert_eq!(t["logprob"].as_f64(), Some(top[0]));
    }
    assert!(text.starts_with(&content(&reply)), "{reply}");

    // A text completion, whole and streamed.
    let body = json!({"model": h.base, "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0, "logprobs": 2});
    let (status, reply) = h.post("/v1/completions", &body);
    assert_eq!(
        (status, reply["object"].as_str()),
        (200, Some("text_completion")),
        "{reply}"
    );
    let whole = reply["choices"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(
        reply["choices"][0]["logprobs"]["tokens"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let mut body = body;
    body["stream"] = json!(true);
    let (_, events) = h.stream("/v1/completions", &body);
    let streamed: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(streamed, whole);

    let log = h.wait_log(6);
    assert!(log.iter().all(|r| r.status == 200), "{log:?}");
    assert_eq!(log[1].cached_tokens as u64, cached);
}

#[test]
fn adapters_are_chosen_by_model_name_on_one_base() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let adapter = random_adapter(&dir.path().join("tickets"), 3);
    let h = Harness::start(
        &dir.path().join("data"),
        &model,
        Some(&adapter),
        ServerSettings::default(),
    );
    let (_, models) = h.get("/v1/models");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["tiny", "tiny:tickets"]);
    let (status, one) = h.get("/v1/models/tiny:tickets");
    assert_eq!((status, one["id"].as_str()), (200, Some("tiny:tickets")));

    let messages = json!([{"role": "user", "content": "Hello there"}]);
    let ask = |model: Option<&str>| {
        let mut body = chat("", messages.clone(), 8);
        match model {
            Some(m) => body["model"] = json!(m),
            None => {
                body.as_object_mut().unwrap().remove("model");
            }
        }
        let (status, reply) = h.post("/v1/chat/completions", &body);
        assert_eq!(status, 200, "{reply}");
        (
            content(&reply),
            reply["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap(),
        )
    };
    let (tuned, _) = ask(Some("tiny:tickets"));
    let (base, base_cached) = ask(Some("tiny"));
    assert_ne!(tuned, base, "the adapter changes the reply");
    // The base's cache never serves the adapter's requests, nor the other way round.
    assert_eq!(base_cached, 0);
    let (again, cached) = ask(Some("tiny:tickets"));
    assert_eq!(
        again, tuned,
        "swapped back from the shelf, the adapter answers as before"
    );
    assert!(cached > 0);
    let (default, _) = ask(None);
    assert_eq!(default, tuned, "no model name: the default adapter");
}

#[test]
fn bad_requests_get_openai_errors_and_nothing_breaks() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let settings = ServerSettings {
        max_tokens: 64,
        ..ServerSettings::default()
    };
    let h = Harness::start(&dir.path().join("data"), &model, None, settings);
    let url = &h.url;
    let post = |body: &str| request(url, "POST", "/v1/chat/completions", None, Some(body));
    let user = json!([{"role": "user", "content": "hi"}]);

    let (s, b) = post("{\"messages\": [");
    assert_error(s, &b, 400, None);
    let (s, b) = post("[1, 2]");
    assert_error(s, &b, 400, None);
    let (s, b) = post(&json!({"messages": user, "temperature": "hot"}).to_string());
    assert_error(s, &b, 400, Some("temperature"));
    let (s, b) = post(&json!({"messages": "hi"}).to_string());
    assert_error(s, &b, 400, Some("messages"));
    let (s, b) = post(&json!({"temperature": 0}).to_string());
    assert_error(s, &b, 400, Some("messages"));
    let (s, b) = post(&json!({"messages": [{"role": "robot", "content": "x"}]}).to_string());
    assert_error(s, &b, 400, Some("messages[0].role"));
    let (s, b) = post(&json!({"messages": user, "max_tokens": 65}).to_string());
    assert_error(s, &b, 400, Some("max_tokens"));
    let (s, b) = post(&json!({"messages": user, "n": 3}).to_string());
    assert_error(s, &b, 400, Some("n"));
    let (s, b) = post(&json!({"messages": user, "top_p": 1.5}).to_string());
    assert_error(s, &b, 400, Some("top_p"));
    let (s, b) = post(
        &json!({"messages": user, "tools": [{"type": "function", "function": {"name": "f"}}]})
            .to_string(),
    );
    assert_error(s, &b, 400, Some("tools"));
    let (s, b) = post(&json!({"model": "gpt-4o", "messages": user}).to_string());
    assert_error(s, &b, 404, None);
    assert_eq!(b["error"]["code"], "model_not_found");
    // The tiny model's context holds 512 tokens.
    let long = "word ".repeat(600);
    let (s, b) = post(&json!({"messages": [{"role": "user", "content": long}]}).to_string());
    assert_error(s, &b, 400, None);
    assert_eq!(b["error"]["code"], "context_length_exceeded");
    // A body over the limit is refused by its stated length, before it is sent (a client
    // still writing it would meet a closed connection).
    let (s, b) = announce_body(url, "/v1/chat/completions", 9 << 20);
    assert_error(s, &b, 413, None);
    let (s, b) = request(
        url,
        "POST",
        "/v1/completions",
        None,
        Some(&json!({"prompt": ["a", "b"]}).to_string()),
    );
    assert_error(s, &b, 400, Some("prompt"));
    let (s, b) = request(url, "GET", "/v1/chat/completions", None, None);
    assert_error(s, &b, 405, None);
    let (s, b) = request(url, "GET", "/v1/nothing", None, None);
    assert_error(s, &b, 404, None);
    let (s, b) = request(url, "GET", "/v1/models/none", None, None);
    assert_error(s, &b, 404, None);

    // After all that, the server still answers.
    let (s, b) = post(&chat("", user, 2).to_string());
    assert_eq!(s, 200, "{b}");
}

#[test]
fn a_key_guards_the_api_but_not_health() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let settings = ServerSettings {
        api_key: Some("sk-test".into()),
        ..ServerSettings::default()
    };
    let h = Harness::start(&dir.path().join("data"), &model, None, settings);
    let body = chat("", json!([{"role": "user", "content": "hi"}]), 2).to_string();
    let (s, b) = request(&h.url, "POST", "/v1/chat/completions", None, Some(&body));
    assert_error(s, &b, 401, None);
    let (s, b) = request(
        &h.url,
        "POST",
        "/v1/chat/completions",
        Some("sk-wrong"),
        Some(&body),
    );
    assert_error(s, &b, 401, None);
    assert_eq!(b["error"]["code"], "invalid_api_key");
    let (s, b) = request(&h.url, "GET", "/v1/models", Some("sk-wrong"), None);
    assert_error(s, &b, 401, None);
    let (s, _) = request(
        &h.url,
        "POST",
        "/v1/chat/completions",
        Some("sk-test"),
        Some(&body),
    );
    assert_eq!(s, 200);
    assert_eq!(raw(&h.url, "GET", "/health", None, None).0, 200);

    // Beyond loopback without a key, one is generated once and kept.
    let wide = ServerSettings {
        host: "0.0.0.0".into(),
        ..ServerSettings::default()
    };
    let key = h.adapt.server_key(&wide).unwrap().unwrap();
    assert!(key.starts_with("sk-adapt-") && key.len() > 40);
    assert_eq!(h.adapt.server_key(&wide).unwrap(), Some(key));
    assert_eq!(
        h.adapt.server_key(&ServerSettings::default()).unwrap(),
        None
    );
}

#[test]
fn the_prompt_cache_survives_a_restart() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("data");
    let messages = json!([{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Name a fruit."}]);
    let mut h = Harness::start(&data, &model, None, ServerSettings::default());
    let (_, cold) = h.post("/v1/chat/completions", &chat(&h.base, messages.clone(), 4));
    let saved = h.stop();
    assert!(saved.caches >= 1 && saved.tokens > 0, "{saved:?}");
    drop(h);

    let h = Harness::start(&data, &model, None, ServerSettings::default());
    let (_, warm) = h.post("/v1/chat/completions", &chat(&h.base, messages, 4));
    assert_eq!(content(&warm), content(&cold));
    let prompt = warm["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(
        warm["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64(),
        Some(prompt - 1)
    );
}

/// Sends a streamed request over a raw connection and reads until the first text chunk.
fn open_stream(url: &str, body: &Value) -> TcpStream {
    let addr = url.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).unwrap();
    let body = body.to_string();
    write!(
        conn,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"content\":\"")
        || String::from_utf8_lossy(&seen).matches("data: ").count() < 2
    {
        let n = conn.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    conn
}

#[test]
fn requests_queue_in_order_within_a_bound_and_leaving_cancels() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let settings = ServerSettings {
        max_concurrency: 1,
        ..ServerSettings::default()
    };
    let h = Harness::start(
        &dir.path().join("data"),
        &adapt_testsupport::smollm2_gguf(),
        None,
        settings,
    );
    let mut body = chat(
        "",
        json!([{"role": "user", "content": "Write a long story about a lighthouse keeper."}]),
        200,
    );
    body["stream"] = json!(true);
    let conn = open_stream(&h.url, &body);
    // The one place is taken: another request is refused, not queued.
    let (s, b) = h.post(
        "/v1/chat/completions",
        &chat("", json!([{"role": "user", "content": "hi"}]), 2),
    );
    assert_error(s, &b, 429, None);
    // The client leaves: its generation stops well before its 200 tokens.
    drop(conn);
    let log = h.wait_log(2);
    let streamed = log.iter().find(|r| r.stream).unwrap();
    assert_eq!(streamed.status, 499, "{log:?}");
    assert!(streamed.completion_tokens < 100, "{streamed:?}");
    // Its place is free again.
    let (s, b) = h.post(
        "/v1/chat/completions",
        &chat("", json!([{"role": "user", "content": "hi"}]), 2),
    );
    assert_eq!(s, 200, "{b}");
}

/// Sends only the head of a POST whose `Content-Length` says `length` bytes follow, and reads
/// the answer the server gives before any of them arrive: its status and body as JSON.
fn announce_body(url: &str, path: &str, length: usize) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the headers and the whole JSON body are in (the server closes or stops writing).
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the answer: {e}"),
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            if serde_json::from_str::<serde_json::Value>(body.trim()).is_ok() {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.trim().to_string();
    (status, serde_json::from_str(&body).unwrap())
}
