//! `adapt runs` and `adapt jobs` end to end, each test with its own data directory
//! (`ADAPT_DATA_DIR`) filled through the store's typed API.

use std::path::Path;
use std::process::{Command, Output};

use adapt_store::{Metric, NewJob, NewRun, Status, Store};

fn adapt(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adapt"))
        .args(args)
        .env("ADAPT_DATA_DIR", data)
        .output()
        .expect("adapt starts")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn store(data: &Path) -> Store {
    Store::open(&data.join("adapt.db")).unwrap()
}

#[test]
fn an_empty_data_directory_lists_nothing_and_gets_a_database() {
    let data = tempfile::tempdir().unwrap();
    let runs = adapt(data.path(), &["runs", "list"]);
    assert!(runs.status.success(), "{}", stderr(&runs));
    assert_eq!(stdout(&runs).trim(), "No training runs yet.");
    let jobs = adapt(data.path(), &["jobs", "list"]);
    assert!(jobs.status.success(), "{}", stderr(&jobs));
    assert_eq!(stdout(&jobs).trim(), "No jobs yet.");
    assert_eq!(store(data.path()).integrity_check().unwrap(), "ok");
}

#[test]
fn runs_are_listed_and_shown_with_metrics_and_checkpoints() {
    let data = tempfile::tempdir().unwrap();
    let run = {
        let mut store = store(data.path());
        let run = store
            .create_run(&NewRun {
                name: "tickets-lora".into(),
                config: r#"{"rank":8}"#.into(),
                ..NewRun::default()
            })
            .unwrap()
            .id;
        store.set_run_status(run, Status::Running, None).unwrap();
        let metrics: Vec<Metric> = (1..=12)
            .map(|step| Metric {
                step,
                epoch: step as f64 / 12.0,
                train_loss: Some(3.0 - step as f64 * 0.1),
                val_loss: (step == 12).then_some(1.75),
                learning_rate: 2e-4,
                tokens_per_second: 512.0,
                peak_memory: 3_000_000_000,
                ..Metric::default()
            })
            .collect();
        store.add_metrics(run, &metrics).unwrap();
        store
            .add_checkpoint(run, 10, &data.path().join("runs/1/0000010"))
            .unwrap();
        run
    };
    let list = adapt(data.path(), &["runs", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let line = stdout(&list)
        .lines()
        .find(|l| l.contains("tickets-lora"))
        .map(str::to_string)
        .expect("the run is listed");
    assert!(line.contains("running"), "{line}");

    let show = adapt(data.path(), &["runs", "show", &run.to_string()]);
    let text = stdout(&show);
    assert!(show.status.success(), "{}", stderr(&show));
    assert!(text.contains("Metrics     12 steps"), "{text}");
    assert!(text.contains("1.7500"), "the validation loss: {text}");
    assert!(text.contains("Checkpoint  step 10"), "{text}");
    assert!(text.contains(r#"{"rank":8}"#), "{text}");

    let json = adapt(data.path(), &["runs", "show", &run.to_string(), "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["metrics"].as_array().unwrap().len(), 12);
    assert_eq!(value["run"]["status"], "running");
}

#[test]
fn a_missing_run_or_job_is_a_clear_error_not_a_panic() {
    let data = tempfile::tempdir().unwrap();
    let show = adapt(data.path(), &["runs", "show", "42"]);
    assert_eq!(show.status.code(), Some(1));
    assert!(
        stderr(&show).contains("error [run.not_found]"),
        "{}",
        stderr(&show)
    );
    let cancel = adapt(data.path(), &["jobs", "cancel", "42"]);
    assert_eq!(cancel.status.code(), Some(1));
    assert!(
        stderr(&cancel).contains("error [job.not_found]"),
        "{}",
        stderr(&cancel)
    );
    let bad = adapt(data.path(), &["runs", "show", "first"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(!stderr(&bad).contains("panicked"), "{}", stderr(&bad));
}

#[test]
fn jobs_are_listed_with_interrupted_ones_offered_and_cancelled_by_id() {
    let data = tempfile::tempdir().unwrap();
    let (queued, running, interrupted) = {
        let mut store = store(data.path());
        let run = store.create_run(&NewRun::default()).unwrap().id;
        let mut job = |kind: &str, run_id: Option<i64>| {
            store
                .create_job(&NewJob {
                    kind: kind.into(),
                    run_id,
                    ..NewJob::default()
                })
                .unwrap()
                .id
        };
        let (queued, running, interrupted) = (
            job("download", None),
            job("convert", None),
            job("train", Some(run)),
        );
        store.start_job(running).unwrap();
        store
            .set_job_progress(running, 30, Some(100), "step 30")
            .unwrap();
        store.start_job(interrupted).unwrap();
        // What a start-up after their process died does (the CLI's own detection waits for
        // a stale heartbeat; the API's tests cover it).
        let dead = store.job(interrupted).unwrap().heartbeat_at.unwrap() + 1;
        let marked = store.interrupt_stale_jobs(dead).unwrap();
        assert_eq!(marked.len(), 2);
        // The "running" job is resumed by a live process, keeping its progress.
        store.start_job(running).unwrap();
        (queued, running, interrupted)
    };
    let list = adapt(data.path(), &["jobs", "list"]);
    let text = stdout(&list);
    assert!(list.status.success(), "{}", stderr(&list));
    let row = |id: i64| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("job {id} listed: {text}"))
            .to_string()
    };
    assert!(row(queued).contains("queued"), "{text}");
    assert!(row(running).contains("running"), "{text}");
    assert!(row(running).contains("30/100"), "{text}");
    assert!(row(interrupted).contains("interrupted"), "{text}");
    assert!(text.contains("1 interrupted"), "{text}");
    assert!(
        text.contains("resume training run 1 with: adapt train --resume 1"),
        "{text}"
    );

    let out = adapt(data.path(), &["jobs", "cancel", &queued.to_string()]);
    assert!(stdout(&out).contains("cancelled"), "{}", stderr(&out));
    let out = adapt(data.path(), &["jobs", "cancel", &running.to_string()]);
    assert!(
        stdout(&out).contains("cancel requested"),
        "{}",
        stderr(&out)
    );
    let out = adapt(data.path(), &["jobs", "cancel", &queued.to_string()]);
    assert!(stdout(&out).contains("already ended"), "{}", stdout(&out));

    let store = store(data.path());
    assert_eq!(store.job(queued).unwrap().status, Status::Cancelled);
    assert!(store.job(running).unwrap().cancel_requested);
    assert_eq!(store.job(interrupted).unwrap().status, Status::Interrupted);
}

#[test]
fn doctor_shows_the_data_directory_and_models_already_in_the_hub_cache() {
    let data = tempfile::tempdir().unwrap();
    let hub = tempfile::tempdir().unwrap();
    let snapshot = hub
        .path()
        .join("models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots/abc");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::write(snapshot.join("config.json"), "{}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_adapt"))
        .args(["doctor", "--json"])
        .env("ADAPT_DATA_DIR", data.path())
        .env("HF_HUB_CACHE", hub.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["data_dir"], data.path().to_str().unwrap());
    assert_eq!(report["hub_cache"], hub.path().to_str().unwrap());
    let models = report["hub_models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["repo_id"], "HuggingFaceTB/SmolLM2-135M-Instruct");
    assert_eq!(models[0]["path"], snapshot.to_str().unwrap());
    // Read in place: nothing was copied into the data directory.
    assert!(!data.path().join("models").exists());
}
