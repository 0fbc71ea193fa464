//! The commands through Tauri's IPC, as the page calls them (on Tauri's mock runtime): deleting
//! a model in two steps (the plan the page shows, then its confirmation), the paths every
//! command checks before it reads anything, and a conversation's topics on SmolLM2.

use std::path::Path;

use adapt_api::{Adapt, AdaptConfig};
use adapt_gguf::test_util::GgufBuilder;
use adapt_gguf::GgmlType;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, INVOKE_KEY};
use tauri::webview::{InvokeRequest, WebviewWindow, WebviewWindowBuilder};

use super::*;

struct App {
    _app: tauri::App<tauri::test::MockRuntime>,
    window: WebviewWindow<tauri::test::MockRuntime>,
}

impl App {
    /// The app over an API whose data and models folders are in `dir`.
    fn new(dir: &Path) -> App {
        let adapt = Adapt::start_with(AdaptConfig {
            data_dir: Some(dir.join("data")),
            dataset_cache: Some(dir.join("cache")),
            ..AdaptConfig::default()
        })
        .unwrap();
        adapt.set_models_dir(Some(&dir.join("models"))).unwrap();
        let app = mock_builder()
            .manage(Shared::new(adapt))
            .invoke_handler(tauri::generate_handler![
                import_model,
                removal_plan,
                delete_model,
                load_model,
                new_chat,
                send_message,
                chat_state,
                set_topics,
                move_message,
                make_variant,
                inspect_dataset,
                dataset_lines,
                plan_training,
                list_sweeps,
                sweep_details,
                start_sweep,
                resume_sweep,
                stop_sweep,
            ])
            .build(mock_context(noop_assets()))
            .unwrap();
        let window = WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap();
        App { _app: app, window }
    }

    /// The command's answer: `Ok(value)` or `Err(the API's error)`.
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let request = InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(&self.window, request).map(|b| b.deserialize::<Value>().unwrap())
    }

    /// The code of the error `cmd` answers.
    fn refused(&self, cmd: &str, args: Value) -> String {
        let e = self.invoke(cmd, args).expect_err(cmd);
        e["code"].as_str().unwrap().to_string()
    }
}

fn gguf(path: &Path) {
    let bytes = GgufBuilder::new()
        .kv_str("general.architecture", "llama")
        .tensor("token_embd.weight", &[256, 100], GgmlType::Q8_0)
        .build();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn deleting_shows_what_goes_then_removes_only_that_once_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path());
    let source = dir.path().join("small.gguf");
    gguf(&source);
    let entry = app.invoke("import_model", json!({"path": source})).unwrap();
    let copy = dir.path().join("models/small.gguf");
    assert_eq!(entry["path"], json!(copy));

    let plan = app
        .invoke("removal_plan", json!({"name": "small.gguf"}))
        .unwrap();
    assert_eq!(plan["origin"], "imported");
    assert_eq!(
        plan["files"],
        json!([{"path": copy, "bytes": std::fs::metadata(&source).unwrap().len()}])
    );
    let args = |confirmation: &Value| json!({"name": "small.gguf", "confirmation": confirmation});
    assert_eq!(
        app.refused("delete_model", args(&json!("0123456789abcdef"))),
        "library.unconfirmed"
    );
    assert!(copy.exists());
    let removed = app
        .invoke("delete_model", args(&plan["confirmation"]))
        .unwrap();
    assert_eq!(removed, plan);
    assert!(!copy.exists() && source.exists());

    // The person's own file in the models folder is refused, with the reason.
    let mine = dir.path().join("models/mine.gguf");
    gguf(&mine);
    let e = app
        .invoke("removal_plan", json!({"name": "mine.gguf"}))
        .unwrap_err();
    assert_eq!(e["code"], "library.not_owned");
    assert!(e["message"].as_str().unwrap().contains("your file"), "{e}");
    assert!(mine.exists());
}

#[test]
fn paths_are_checked_before_they_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path());
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a model").unwrap();
    let json_data = dir.path().join("chats.json");
    std::fs::write(&json_data, "{\"text\": \"hi\"}\n").unwrap();
    let missing = dir.path().join("missing.gguf");

    assert_eq!(
        app.refused("import_model", json!({"path": missing})),
        "model.not_found"
    );
    assert_eq!(
        app.refused("import_model", json!({"path": text})),
        "library.not_a_model"
    );
    assert_eq!(
        app.refused("load_model", json!({"path": text})),
        "library.not_a_model"
    );
    assert_eq!(
        app.refused("load_model", json!({"path": dir.path()})),
        "library.not_a_model"
    );
    let variant = json!({"kind": "mlx"});
    assert_eq!(
        app.refused(
            "make_variant",
            json!({"path": text, "variant": variant, "events": "__CHANNEL__:1"})
        ),
        "library.not_a_model"
    );
    assert_eq!(
        app.refused("inspect_dataset", json!({"path": json_data})),
        "data.file_type"
    );
    assert_eq!(
        app.refused(
            "dataset_lines",
            json!({"path": dir.path(), "line": 1, "context": 1})
        ),
        "data.file_type"
    );
    assert_eq!(
        app.refused(
            "dataset_lines",
            json!({"path": text, "line": 1, "context": 1})
        ),
        "data.file_type"
    );
    let form = json!({
        "model": text, "dataset": json_data, "csv": {}, "valid_share": 0.1,
        "mask_prompt": true, "qlora": false, "config": {}, "name": null
    });
    let e = app
        .invoke(
            "plan_training",
            json!({"form": form, "events": "__CHANNEL__:2"}),
        )
        .unwrap_err();
    assert_eq!(e["code"], "request.invalid");
    let fields: Vec<&str> = e["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["model", "dataset"], "{e}");
}

#[test]
fn sweeps_are_listed_and_bad_requests_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path());
    assert_eq!(app.invoke("list_sweeps", json!({})).unwrap(), json!([]));
    for cmd in ["sweep_details", "stop_sweep"] {
        assert_eq!(app.refused(cmd, json!({"id": 3})), "sweep.not_found");
    }
    assert_eq!(
        app.refused("resume_sweep", json!({"id": 3, "events": "__CHANNEL__:1"})),
        "sweep.not_found"
    );
    let train = json!({
        "model": dir.path().join("none.gguf"), "dataset": dir.path().join("none.jsonl"),
        "csv": {}, "valid_share": 0.1, "mask_prompt": true, "qlora": false,
        "config": {"iters": 4}, "name": null
    });
    let form = |space: Value| {
        json!({"form": {"train": train, "space": space, "trials": 2, "startup_trials": null,
                        "seed": 0, "rungs": [0.5, 1.0], "reduction": 2.0},
               "events": "__CHANNEL__:2"})
    };
    let e = app
        .invoke(
            "start_sweep",
            form(json!({"learning_rate": {"log_uniform": [1e-5, 1e-3]}})),
        )
        .unwrap_err();
    assert_eq!(e["code"], "request.invalid");
    let fields: Vec<&str> = e["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["model", "dataset"], "{e}");
    let e = app
        .invoke(
            "start_sweep",
            form(json!({"learning_rat": {"uniform": [0.1, 0.2]}})),
        )
        .unwrap_err();
    assert_eq!(e["code"], "sweep.unknown_knob", "{e}");
}

#[test]
fn topics_are_turned_on_picked_moved_and_turned_off_through_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::new(dir.path());
    let model = adapt_testsupport::smollm2_gguf();
    // Before a model is loaded, each says so.
    let on = json!({"threshold": 0.25, "layer": null});
    assert_eq!(
        app.refused("set_topics", json!({"chat": 1, "settings": on})),
        "api.no_model"
    );
    assert_eq!(
        app.refused("move_message", json!({"chat": 1, "index": 0, "to": "new"})),
        "api.no_model"
    );
    app.invoke("load_model", json!({"path": model})).unwrap();
    let chat = app.invoke("new_chat", json!({})).unwrap();
    let params = json!({"max_tokens": 4});
    let say = |text: &str, topic: Value| {
        app.invoke(
            "send_message",
            json!({"chat": chat, "text": text, "params": params, "topic": topic,
                   "events": "__CHANNEL__:3"}),
        )
    };
    // A topic picked while topics are off is refused; without one the message just goes.
    let e = say("Hello there.", json!({"topic": 1})).unwrap_err();
    assert_eq!(e["code"], "request.invalid", "{e}");
    say("Hello there.", Value::Null).unwrap();

    let state = app
        .invoke("set_topics", json!({"chat": chat, "settings": on}))
        .unwrap();
    let topics = &state["topics"];
    assert_eq!(topics["message_topics"], json!([1, 1]), "{state}");
    assert_eq!(topics["topics"][0]["turns"], 1);
    // A bad threshold is refused with the reason.
    let e = app
        .invoke(
            "set_topics",
            json!({"chat": chat, "settings": {"threshold": 2.0, "layer": null}}),
        )
        .unwrap_err();
    assert!(e["message"].as_str().unwrap().contains("threshold"), "{e}");

    say("My bike chain keeps slipping.", json!("new")).unwrap();
    say("And the gears click.", json!({"topic": 2})).unwrap();
    let state = app.invoke("chat_state", json!({"chat": chat})).unwrap();
    let topics = &state["topics"];
    assert_eq!(
        topics["message_topics"],
        json!([1, 1, 2, 2, 2, 2]),
        "{state}"
    );
    let tokens = |s: &Value, i: usize| s["topics"]["topics"][i]["cache_tokens"].as_u64().unwrap();
    let (first, second) = (tokens(&state, 0), tokens(&state, 1));

    // The bike message goes to topic 1: its cache grows, topic 2's shrinks.
    let moved = app
        .invoke(
            "move_message",
            json!({"chat": chat, "index": 2, "to": {"topic": 1}}),
        )
        .unwrap();
    assert_eq!(
        moved["topics"]["message_topics"],
        json!([1, 1, 1, 1, 2, 2]),
        "{moved}"
    );
    assert!(
        tokens(&moved, 0) > first && tokens(&moved, 1) < second,
        "{moved}"
    );
    let e = app
        .invoke(
            "move_message",
            json!({"chat": chat, "index": 1, "to": "new"}),
        )
        .unwrap_err();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("not a user message"),
        "{e}"
    );

    let off = app
        .invoke("set_topics", json!({"chat": chat, "settings": null}))
        .unwrap();
    assert_eq!(off["topics"], Value::Null);
    assert_eq!(off["messages"].as_array().unwrap().len(), 6);
}
