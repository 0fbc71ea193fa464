//! A server on 127.0.0.1 (a free port) over a tiny random model with SmolLM2's tokenizer and
//! chat template, and a small HTTP client.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use adapt_api::{Adapt, AdaptConfig, ServedRequest, ServerSettings};
use adapt_server::Server;
use serde_json::Value;

static MLX: Mutex<()> = Mutex::new(());

/// One engine at a time in this process.
pub fn lock() -> MutexGuard<'static, ()> {
    MLX.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn tokenizer() -> adapt_text::Tokenizer {
    let gguf = adapt_gguf::GgufFile::open(adapt_testsupport::smollm2_gguf()).unwrap();
    adapt_text::Tokenizer::from_gguf(&gguf).unwrap()
}

/// A tiny model folder named `tiny` in `dir` (written once per folder).
pub fn tiny_model(dir: &Path) -> PathBuf {
    let out = dir.join("tiny");
    if !out.is_dir() {
        let args = adapt_engine::testing::tiny_llama_args();
        adapt_engine::testing::write_tiny_chat_folder(&out, &args, 7, &tokenizer()).unwrap();
    }
    out
}

/// Writes a LoRA adapter folder with random (non-zero) weights for the tiny model.
pub fn random_adapter(dir: &Path, seed: u64) -> PathBuf {
    use adapt_engine::mlx_rs::{random, Array};
    std::fs::create_dir_all(dir).unwrap();
    let args = adapt_engine::testing::tiny_llama_args();
    let (h, rank) = (args.hidden_size, 4);
    let mut arrays: Vec<(String, Array)> = Vec::new();
    let mut n = 0;
    for layer in 0..args.num_hidden_layers {
        for (proj, out) in [
            ("q_proj", args.num_attention_heads * args.head_dim),
            ("v_proj", args.num_key_value_heads * args.head_dim),
        ] {
            for (leaf, shape) in [("lora_a", [h, rank]), ("lora_b", [rank, out])] {
                n += 1;
                let key = random::key(seed * 100 + n).unwrap();
                let a = random::normal::<f32>(&shape, None, 0.5, &key).unwrap();
                arrays.push((format!("model.layers.{layer}.self_attn.{proj}.{leaf}"), a));
            }
        }
    }
    Array::save_safetensors(
        arrays.iter().map(|(k, v)| (k.as_str(), v)),
        None,
        dir.join("adapters.safetensors"),
    )
    .unwrap();
    let config = serde_json::json!({
        "fine_tune_type": "lora",
        "num_layers": args.num_hidden_layers,
        "lora_parameters": {"rank": rank, "scale": 20.0, "dropout": 0.0, "keys": ["self_attn.q_proj", "self_attn.v_proj"]},
    });
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
    dir.to_path_buf()
}

/// A running server and what the test needs of it.
pub struct Harness {
    pub server: Option<Server>,
    pub adapt: Arc<Adapt>,
    pub base: String,
    pub url: String,
    pub log: Arc<Mutex<Vec<ServedRequest>>>,
}

impl Harness {
    /// Serves `model` with the data directory `data`.
    pub fn start(
        data: &Path,
        model: &Path,
        adapter: Option<&Path>,
        settings: ServerSettings,
    ) -> Harness {
        let adapt = Arc::new(
            Adapt::start_with(AdaptConfig {
                data_dir: Some(data.to_path_buf()),
                ..AdaptConfig::default()
            })
            .unwrap(),
        );
        let adapter = adapter.map(|a| a.display().to_string());
        let served = adapt.start_serving(model, adapter.as_deref()).unwrap();
        let key = adapt.server_key(&settings).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let server = Server::start(
            adapt.clone(),
            served,
            &ServerSettings {
                port: 0,
                ..settings
            },
            key,
            Arc::new(move |r| sink.lock().unwrap().push(r)),
        )
        .unwrap();
        let url = format!("http://{}", server.addr());
        let key_header = server.key().map(str::to_string);
        let (_, models) = request(&url, "GET", "/v1/models", key_header.as_deref(), None);
        let base = models["data"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Harness {
            server: Some(server),
            adapt,
            base,
            url,
            log,
        }
    }

    /// Stops the server, writing its prompt cache.
    pub fn stop(&mut self) -> adapt_api::SavedPrompts {
        self.server.take().unwrap().stop().unwrap()
    }

    /// Waits until the log holds `n` entries; returns them.
    pub fn wait_log(&self, n: usize) -> Vec<ServedRequest> {
        let started = Instant::now();
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.len() >= n || started.elapsed() > Duration::from_secs(60) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        request(&self.url, "POST", path, None, Some(&body.to_string()))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        request(&self.url, "GET", path, None, None)
    }

    /// A streamed request: the status and the events' data, `[DONE]` included.
    pub fn stream(&self, path: &str, body: &Value) -> (u16, Vec<String>) {
        let (status, text) = raw(&self.url, "POST", path, None, Some(&body.to_string()));
        let events = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_string)
            .collect();
        (status, events)
    }
}

/// Sends a request; the status and the body's text.
pub fn raw(
    url: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut req =
        ureq::request(method, &format!("{url}{path}")).set("content-type", "application/json");
    if let Some(key) = key {
        req = req.set("authorization", &format!("Bearer {key}"));
    }
    let result = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    (status, response.into_string().unwrap())
}

/// Sends a request; the status and the body as JSON.
pub fn request(
    url: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let (status, text) = raw(url, method, path, key, body);
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (status, value)
}

/// Checks an OpenAI-shaped error.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_param: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string() && e["code"].is_string(), "{body}");
    assert_eq!(e["param"].as_str(), want_param, "{body}");
}
