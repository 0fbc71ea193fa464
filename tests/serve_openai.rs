//! `adapt serve`'s API with the official `openai` Python client, on SmolLM2: a reply and a
//! streamed reply that name Paris, a second turn whose usage reports the first turn's tokens
//! as cached, an adapter trained here (a few steps on the sample dataset) chosen by its model
//! name, a bad request, an unknown model and a wrong key refused as OpenAI's API refuses them.
//! Needs the client's environment (`ADAPT_OPENAI_PYTHON`, set by `scripts/test.sh`).

use std::sync::Arc;

use adapt_api::{Adapt, AdaptConfig, ServerSettings, TrainConfig, TrainForm};
use adapt_server::Server;
use adapt_testsupport::{repo_root, smollm2_gguf};
use serde_json::Value;

/// Trains an adapter for a few steps on the sample dataset; returns its run id.
fn train(adapt: &Adapt) -> i64 {
    let form = TrainForm {
        model: smollm2_gguf().display().to_string(),
        dataset: repo_root()
            .join("examples/blue-lantern.jsonl")
            .display()
            .to_string(),
        csv: Default::default(),
        valid_share: 0.0,
        mask_prompt: true,
        qlora: false,
        config: TrainConfig {
            num_layers: 4,
            batch_size: 4,
            iters: Some(8),
            learning_rate: 5e-4,
            max_seq_length: 128,
            ..TrainConfig::default()
        },
        name: None,
    };
    let job = adapt.start_training(form.request(), |_| {}).unwrap();
    job.wait().unwrap().run_id
}

#[test]
fn the_openai_client_talks_to_adapt_serve() {
    let Some(python) = adapt_testsupport::openai_python("the openai client against adapt serve")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let adapt = Arc::new(
        Adapt::start_with(AdaptConfig {
            data_dir: Some(dir.path().join("data")),
            dataset_cache: Some(dir.path().join("cache")),
            ..AdaptConfig::default()
        })
        .unwrap(),
    );
    let run = train(&adapt);
    let settings = ServerSettings {
        port: 0,
        api_key: Some("sk-e2e".into()),
        ..ServerSettings::default()
    };
    let served = adapt.start_serving(&smollm2_gguf(), None).unwrap();
    let server = Server::start(
        adapt.clone(),
        served,
        &settings,
        settings.api_key.clone(),
        Arc::new(|_| {}),
    )
    .unwrap();
    let base = "SmolLM2-135M-Instruct.Q4_1";
    let tuned = format!("{base}:run-{run}");
    let url = format!("http://{}/v1", server.addr());
    let out = adapt_testsupport::run_reference(
        &python,
        "openai_client.py",
        [url.as_str(), "sk-e2e", base, tuned.as_str()],
    );
    let out: Value = serde_json::from_slice(&out).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&out).unwrap());

    assert_eq!(out["models"], serde_json::json!([base, tuned]));
    let whole = out["whole"]["content"].as_str().unwrap();
    assert!(whole.contains("Paris"), "{whole}");
    assert_eq!(out["whole"]["finish_reason"], "stop");
    let streamed = out["stream"]["content"].as_str().unwrap();
    assert_eq!(streamed, whole);
    assert!(out["stream"]["chunks"].as_u64().unwrap() > 3);
    assert_eq!(
        out["stream"]["usage"]["completion_tokens"],
        out["whole"]["usage"]["completion_tokens"]
    );

    // The second turn resends the first: its tokens come from the cache.
    let first = &out["whole"]["usage"];
    let cached = out["second"]["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(
        cached >= first["prompt_tokens"].as_u64().unwrap(),
        "{}",
        out["second"]
    );
    assert!(
        out["second"]["content"].as_str().unwrap().contains("Rome"),
        "{}",
        out["second"]
    );

    let (tuned_reply, base_reply) = (&out["adapter"]["tuned"], &out["adapter"]["base"]);
    assert_ne!(
        tuned_reply, base_reply,
        "the adapter is applied by its model name"
    );

    assert_eq!(out["bad_request"]["status"], 400);
    assert_eq!(out["bad_request"]["body"]["param"], "messages[0].role");
    assert_eq!(out["unknown_model"]["status"], 404);
    assert_eq!(out["unknown_model"]["body"]["code"], "model_not_found");
    assert_eq!(out["wrong_key"]["status"], 401);
    assert_eq!(out["wrong_key"]["body"]["code"], "invalid_api_key");
    server.stop().unwrap();
}
