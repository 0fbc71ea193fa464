//! Sweeps on a tiny random model and generated data: the sweep keeps a good learning rate
//! over a clearly bad one, prunes a trial early at a rung, draws and trains the same trials
//! again for the same seed, promotes its best trial's adapter, and refuses unknown knobs and
//! sweeps without a step budget by name.

use std::path::{Path, PathBuf};

use adapt_api::datasets::{DataOptions, PrepareInputs, SplitRatios};
use adapt_api::{
    read_sweep_spec, Adapt, AdaptConfig, Domain, JobStatus, SweepForm, SweepProgress, SweepRequest,
    TrainConfig, TrainForm, TrainRequest, TrialRecord, TrialState,
};
use serde_json::json;

fn tiny_model(dir: &Path) -> PathBuf {
    let gguf = adapt_testsupport::smollm2_gguf();
    adapt_engine::testing::write_tiny_folder_like(&gguf, &dir.join("tiny")).unwrap()
}

/// Short answers the model can learn quickly: a fixed code for each of a few questions.
fn fact_data(path: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"messages": [{{"role": "user", "content": "What is code {}?"}}, {{"role": "assistant", "content": "Code {} is blue lantern."}}]}}"#,
                i % 4,
                i % 4
            )
        })
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn request(model: &Path, data: &Path) -> TrainRequest {
    let config = TrainConfig {
        iters: Some(8),
        batch_size: 4,
        num_layers: 2,
        max_seq_length: 64,
        steps_per_report: 4,
        val_batches: -1,
        ..TrainConfig::default()
    };
    TrainRequest {
        model: model.into(),
        data: PrepareInputs {
            train: data.into(),
            valid: None,
            test: None,
            ratios: SplitRatios {
                valid: 0.25,
                test: 0.0,
                seed: 0,
            },
        },
        data_options: DataOptions {
            max_seq_length: 64,
            ..DataOptions::default()
        },
        config,
        name: None,
        qlora: false,
        adapter_path: None,
    }
}

fn start(dir: &Path) -> Adapt {
    Adapt::start_with(AdaptConfig {
        data_dir: Some(dir.join("data")),
        dataset_cache: Some(dir.join("cache")),
        ..AdaptConfig::default()
    })
    .unwrap()
}

fn sweep(dir: &Path, model: &Path, data: &Path, seed: u64) -> (Vec<TrialRecord>, Adapt, i64) {
    let adapt = start(dir);
    let req = request(model, data);
    let spec = read_sweep_spec(
        json!({
            "space": {
                "learning_rate": {"choice": [1e-7, 3e-2]},
                "lora_parameters.rank": {"choice": [2, 4]},
            },
            "trials": 5,
            "startup_trials": 2,
            "seed": seed,
            "rungs": [0.25, 0.5],
            "reduction": 2,
        }),
        "sweep",
        &req.config,
    )
    .unwrap();
    let mut ended = Vec::new();
    let job = adapt
        .start_sweep(
            SweepRequest {
                request: req,
                spec,
                name: Some("lr".into()),
            },
            move |p| {
                if let SweepProgress::TrialEnded(t) = p {
                    ended.push(t.number);
                }
            },
        )
        .unwrap();
    let id = job.sweep_id();
    let best = job.wait().unwrap().expect("a trial completed");
    let details = adapt.sweep_details(id).unwrap();
    assert_eq!(details.sweep.best_run_id, best.run_id);
    assert_eq!(details.rungs, [2, 4, 8]);
    // Each trial's validation curve is its run's, and passes through its rungs' losses.
    assert_eq!(details.model.as_deref(), Some(model));
    assert_eq!(details.curves.len(), details.trials.len());
    for (t, curve) in details.trials.iter().zip(&details.curves) {
        assert_eq!(curve.number, t.number);
        for (rung, loss) in [2, 4, 8].iter().zip(&t.rung_losses) {
            let at = curve.points.iter().find(|p| p.0 == *rung);
            assert!(
                at.is_some_and(|p| (p.1 - loss).abs() < 1e-9),
                "{curve:?} {t:?}"
            );
        }
    }
    (details.trials, adapt, id)
}

#[test]
fn a_sweep_keeps_the_good_learning_rate_prunes_early_and_repeats_for_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("facts.jsonl");
    fact_data(&data, 32);
    let (trials, adapt, id) = sweep(&dir.path().join("a"), &model, &data, 3);
    assert_eq!(trials.len(), 5);
    let lr = |t: &TrialRecord| {
        serde_json::from_str::<serde_json::Value>(&t.params).unwrap()["learning_rate"]
            .as_f64()
            .unwrap()
    };
    let best = &trials[0];
    assert_eq!(best.state, TrialState::Completed);
    assert_eq!(lr(best), 3e-2, "{trials:#?}");
    assert!(
        trials
            .iter()
            .any(|t| t.state == TrialState::Pruned && t.steps < 8 && lr(t) == 1e-7),
        "{trials:#?}"
    );
    // Every trial is a run of its own; the best one's adapter is listed.
    let run = best.run_id.unwrap();
    // Its run records the settings it trained with.
    let config: serde_json::Value =
        serde_json::from_str(&adapt.run(run).unwrap().run.config).unwrap();
    assert_eq!(config["request"]["config"]["learning_rate"], json!(3e-2));
    assert_eq!(config["request"]["config"]["steps_per_eval"], json!(2));
    assert!(adapt
        .run_dir(run)
        .unwrap()
        .join("adapters.safetensors")
        .is_file());
    assert!(adapt
        .adapters()
        .unwrap()
        .iter()
        .any(|a| a.adapter.run_id == Some(run) && a.adapter.name == "lr (best)"));
    // Not resumed once finished.
    let again = adapt.resume_sweep(id, |_| {}).err().unwrap();
    assert_eq!(again.code, "sweep.finished");
    drop(adapt);

    // The same seed draws and trains the same trials.
    let (repeat, _, _) = sweep(&dir.path().join("b"), &model, &data, 3);
    let key = |ts: &[TrialRecord]| -> Vec<(u64, String, Vec<f64>, TrialState)> {
        let mut v: Vec<_> = ts
            .iter()
            .map(|t| (t.number, t.params.clone(), t.rung_losses.clone(), t.state))
            .collect();
        v.sort_by_key(|k| k.0);
        v
    };
    assert_eq!(key(&trials), key(&repeat));
}

#[test]
fn a_sweep_from_the_apps_form_stops_when_asked_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("facts.jsonl");
    fact_data(&data, 16);
    let adapt = start(dir.path());
    let train = TrainForm {
        model: model.display().to_string(),
        dataset: data.display().to_string(),
        csv: Default::default(),
        valid_share: 0.25,
        mask_prompt: true,
        qlora: false,
        config: request(&model, &data).config,
        name: Some("from the form".into()),
    };
    let form = SweepForm {
        train,
        space: [(
            "lora_parameters.rank".to_string(),
            Domain::Choice(vec![json!(2), json!(4)]),
        )]
        .into(),
        trials: 2,
        startup_trials: None,
        seed: 0,
        rungs: vec![0.5, 1.0],
        reduction: 1.0,
    };
    // The first trial waits to train until the sweep has been asked to stop.
    let (started, on_start) = std::sync::mpsc::channel();
    let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
    let job = adapt
        .start_sweep(form.checked_request().unwrap(), move |p| {
            if let SweepProgress::TrialStarted { number: 0, .. } = p {
                let _ = started.send(());
                let _ = wait_for_go.recv();
            }
        })
        .unwrap();
    let id = job.sweep_id();
    on_start.recv().unwrap();
    adapt.stop_sweep(id).unwrap();
    go.send(()).unwrap();
    assert_eq!(job.wait().unwrap(), None);
    let stopped = adapt.sweep_details(id).unwrap();
    assert_eq!(stopped.sweep.status, JobStatus::Cancelled);
    assert_eq!(stopped.sweep.name, "from the form");
    let e = adapt.stop_sweep(id).unwrap_err();
    assert_eq!(e.code, "sweep.not_running");
    assert_eq!(
        adapt.stop_sweep(id + 1).unwrap_err().code,
        "sweep.not_found"
    );

    // Resumed, it trains both trials to the end.
    let best = adapt.resume_sweep(id, |_| {}).unwrap().wait().unwrap();
    let done = adapt.sweep_details(id).unwrap();
    assert_eq!(done.sweep.status, JobStatus::Succeeded);
    assert_eq!(done.trials.len(), 2);
    assert!(done.trials.iter().all(|t| t.state == TrialState::Completed));
    assert_eq!(done.trials[0].run_id, best.and_then(|b| b.run_id));
    assert!(
        done.curves
            .iter()
            .all(|c| c.points.last().map(|p| p.0) == Some(8)),
        "{:?}",
        done.curves
    );
}

#[test]
fn unknown_knobs_and_a_missing_step_budget_are_refused_by_name() {
    let base = TrainConfig::default();
    let e =
        read_sweep_spec(json!({"space": {"lerning_rate": [1e-4]}}), "s.yaml", &base).unwrap_err();
    assert_eq!(e.code, "sweep.unknown_knob");
    assert!(e.message.contains("'lerning_rate'"), "{}", e.message);

    let dir = tempfile::tempdir().unwrap();
    let adapt = start(dir.path());
    let data = dir.path().join("facts.jsonl");
    fact_data(&data, 8);
    let mut req = request(&adapt_testsupport::smollm2_gguf(), &data);
    req.config.iters = None;
    let spec = read_sweep_spec(
        json!({"space": {"learning_rate": [1e-4]}}),
        "s",
        &req.config,
    )
    .unwrap();
    let e = adapt
        .start_sweep(
            SweepRequest {
                request: req,
                spec,
                name: None,
            },
            |_| {},
        )
        .err()
        .unwrap();
    assert_eq!(e.code, "sweep.needs_steps");
    assert!(adapt.sweeps().unwrap().is_empty(), "nothing recorded");
}

#[test]
fn a_sweep_on_smollm2_with_the_sample_data_promotes_a_trial() {
    if !adapt_testsupport::slow_tests("a_sweep_on_smollm2_with_the_sample_data_promotes_a_trial") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let adapt = start(dir.path());
    let data = adapt_testsupport::repo_root().join("examples/blue-lantern.jsonl");
    let mut req = request(&adapt_testsupport::smollm2_gguf(), &data);
    req.config.iters = Some(2);
    req.config.batch_size = 2;
    req.config.num_layers = 1;
    req.config.max_seq_length = 128;
    req.data_options.max_seq_length = 128;
    req.data.ratios.valid = 0.2;
    let spec = read_sweep_spec(
        json!({
            "space": {"learning_rate": {"log_uniform": [1e-5, 1e-3]},
                      "lora_parameters.rank": [4, 8]},
            "trials": 2, "seed": 1, "rungs": [0.5], "reduction": 2,
        }),
        "sweep",
        &req.config,
    )
    .unwrap();
    let mut loads = 0;
    let job = adapt
        .start_sweep(
            SweepRequest {
                request: req,
                spec,
                name: None,
            },
            move |p| {
                if let SweepProgress::Setup(adapt_api::TrainProgress::Loading) = p {
                    loads += 1;
                    assert_eq!(loads, 1, "the model is loaded once");
                }
            },
        )
        .unwrap();
    let id = job.sweep_id();
    let best = job.wait().unwrap().expect("a trial completed");
    let details = adapt.sweep_details(id).unwrap();
    assert_eq!(details.trials.len(), 2);
    assert_eq!(details.trials[0].number, best.number);
    assert!(best.best_val_loss.unwrap().is_finite());
    let folder = adapt.run_dir(best.run_id.unwrap()).unwrap();
    assert!(folder.join("adapters.safetensors").is_file());
    assert!(folder.join("adapter_config.json").is_file());
}

/// A sweep that searches the precision: the base is loaded once in the request's and again
/// for a trial in another, so every trial trains in its own (a base held in the wrong type is
/// refused by the session, which would fail the trial).
#[test]
fn a_sweep_over_the_precision_trains_each_trial_in_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("facts.jsonl");
    fact_data(&data, 16);
    let adapt = start(dir.path());
    let mut req = request(&model, &data);
    req.config.iters = Some(2);
    let spec = read_sweep_spec(
        json!({
            "space": {"precision": {"choice": ["bf16", "f32"]}},
            "trials": 4,
            "startup_trials": 4,
            "seed": 1,
            "rungs": [],
        }),
        "sweep",
        &req.config,
    )
    .unwrap();
    let job = adapt
        .start_sweep(
            SweepRequest {
                request: req,
                spec,
                name: None,
            },
            |_| {},
        )
        .unwrap();
    let id = job.sweep_id();
    job.wait().unwrap().expect("a trial completed");
    let trials = adapt.sweep_details(id).unwrap().trials;
    let precisions: std::collections::BTreeSet<String> = trials
        .iter()
        .map(|t| {
            assert_eq!(t.state, TrialState::Completed, "{t:#?}");
            let params: serde_json::Value = serde_json::from_str(&t.params).unwrap();
            params["precision"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        precisions.into_iter().collect::<Vec<_>>(),
        ["bf16", "f32"],
        "{trials:#?}"
    );
}
