//! What the app's views ask of the API, on the real SmolLM2 and the sample dataset: a plan
//! (memory at the batch size that fits) without training, a calibration that trains three
//! steps and records no run, a short run whose adapter then talks beside the base model on
//! the same loaded weights (A/B), and a converted copy written into the library.

use adapt_api::datasets::DataOptions;
use adapt_api::launch::{read_hosts, Host};
use adapt_api::machines::this_machine;
use adapt_api::{
    Adapt, AdaptConfig, ChatOptions, ErrorCode, GenerateParams, TrainConfig, TrainForm, TrainPlan,
    TrainProgress, TrainRequest, Variant,
};
use adapt_testsupport::{repo_root, smollm2_gguf};

fn form() -> TrainForm {
    TrainForm {
        model: smollm2_gguf().display().to_string(),
        dataset: repo_root()
            .join("examples/blue-lantern.jsonl")
            .display()
            .to_string(),
        csv: Default::default(),
        valid_share: 0.2,
        mask_prompt: true,
        qlora: false,
        config: TrainConfig {
            num_layers: 2,
            batch_size: 4,
            max_seq_length: 128,
            ..TrainConfig::default()
        },
        name: None,
    }
}

/// Machines: a group of two plans half the batch on each machine, bounds the speed at twice
/// one machine's, and the kept hosts are a hostfile `adapt launch --hosts` reads.
fn group_estimate(adapt: &Adapt, request: &TrainRequest, plan: &TrainPlan, speed: f64) {
    let group = adapt
        .estimate_group(request, 2, Some(speed), |_| {})
        .unwrap();
    assert_eq!(
        (
            group.ranks,
            group.batch_per_rank,
            group.per_rank.memory.batch_size
        ),
        (2, 2, 2)
    );
    assert!(group.per_rank.memory.total < plan.memory.total, "{group:?}");
    assert_eq!(group.per_rank.memory.weights, plan.memory.weights);
    assert_eq!(group.exchanged_bytes, plan.trainable_parameters as u64 * 4);
    assert_eq!(group.upper_tokens_per_second, Some(2.0 * speed));
    let e = adapt.estimate_group(request, 3, None, |_| {}).unwrap_err();
    assert!(e.message.contains("not divisible"), "{e:?}");

    assert_eq!(adapt.machines().unwrap(), vec![this_machine(Vec::new())]);
    let hosts = vec![
        this_machine(vec!["10.0.0.1".into()]),
        Host {
            ssh: "mac-b.local".into(),
            ips: vec!["10.0.0.2".into()],
            adapt: None,
        },
    ];
    adapt.save_machines(&hosts).unwrap();
    assert_eq!(adapt.machines().unwrap(), hosts);
    assert_eq!(read_hosts(&adapt.machines_file().unwrap()).unwrap(), hosts);
    let e = adapt.save_machines(&hosts[1..]).unwrap_err();
    assert_eq!(e.code, ErrorCode::LaunchBadHosts);
    assert_eq!(
        adapt.machines().unwrap(),
        hosts,
        "a refused list leaves the kept one"
    );
}

#[test]
fn what_the_app_asks_of_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let adapt = Adapt::start_with(AdaptConfig {
        data_dir: Some(dir.path().join("data")),
        dataset_cache: Some(dir.path().join("cache")),
        ..AdaptConfig::default()
    })
    .unwrap();
    adapt
        .set_models_dir(Some(&dir.path().join("models")))
        .unwrap();
    // What the form shows while it is edited: no problems, and the steps a run takes.
    let check = adapt.check_training(&form());
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    let (examples, train) = (check.examples.unwrap(), check.train_examples.unwrap());
    assert!(
        train > 0 && train < examples,
        "{examples} examples, {train} trained on"
    );
    assert_eq!(
        check.total_steps,
        Some(1000),
        "no epochs or steps: mlx-lm's 1000"
    );
    let mut one_epoch = form();
    one_epoch.config.epochs = Some(2);
    assert_eq!(
        adapt.check_training(&one_epoch).total_steps,
        Some(2 * train.div_ceil(4))
    );
    let request = form().request();
    assert_eq!(
        request.data_options.max_seq_length, 128,
        "statistics use the run's length"
    );
    assert_eq!(
        request.data_options.render.mask_prompt,
        DataOptions::default().render.mask_prompt
    );

    let mut stages = Vec::new();
    let plan = adapt
        .plan_training(&request, |p| {
            stages.push(match p {
                TrainProgress::Preparing(_) => "preparing",
                TrainProgress::Prepared { .. } => "prepared",
                TrainProgress::Loading => "loading",
                TrainProgress::Engine(_) => "engine",
                TrainProgress::Ended(_) => "ended",
                TrainProgress::Run { .. } => "run",
            })
        })
        .unwrap();
    stages.dedup();
    assert_eq!(stages.last(), Some(&"loading"));
    assert!(stages.contains(&"prepared"));
    // Twelve examples, a fifth held out.
    assert!((9..=10).contains(&plan.examples), "{plan:?}");
    assert!(plan.trainable_parameters > 0);
    assert_eq!(plan.memory.batch_size, 4);
    assert!(plan.seq_len > 20 && plan.seq_len <= 128, "{plan:?}");
    assert!(plan.memory.total > plan.memory.weights && plan.memory.fits());

    let calibration = adapt.calibrate_training(&request, |_| {}).unwrap();
    assert_eq!(calibration.steps, 3);
    group_estimate(&adapt, &request, &plan, calibration.tokens_per_second);
    assert!(calibration.measured > 0 && calibration.seconds_per_step > 0.0);
    assert_eq!(calibration.plan.total, plan.memory.total);
    // On the real 4-bit model with two layers adapted the peak measured 1.17× the estimate
    // (the largest gap seen on SmolLM2; random shapes stay within 10 %: tests/memory.rs).
    let ratio = calibration.measured as f64 / plan.memory.total as f64;
    assert!(
        (0.5..1.2).contains(&ratio),
        "measured {} against {:?}",
        calibration.measured,
        plan.memory
    );
    assert!(
        adapt.runs().unwrap().is_empty(),
        "a calibration records no run"
    );

    // A run, then the same questions to the base model and to its adapter, turn by turn on
    // one loaded model: each conversation's replies are those of its own model alone.
    let mut run = form();
    run.config.iters = Some(4);
    run.config.learning_rate = 1e-3;
    let (tx, events) = std::sync::mpsc::channel();
    let summary = adapt
        .start_training(run.request(), move |p| {
            let _ = tx.send(p.clone());
        })
        .unwrap()
        .wait()
        .unwrap();
    // The job's stream says which run it is first, and ends with how it ended, outcome
    // included, and nothing after it.
    let events: Vec<TrainProgress> = events.iter().collect();
    assert!(
        matches!(events.first(), Some(TrainProgress::Run { run_id, resumed: false }) if *run_id == summary.run_id),
        "{:?}",
        events.first()
    );
    match events.last() {
        Some(TrainProgress::Ended(end)) => {
            assert_eq!(end.run_id, summary.run_id);
            assert_eq!(end.status, adapt_api::JobStatus::Succeeded);
            assert_eq!(end.outcome.as_ref().map(|o| o.steps), Some(4));
            assert!(end.error.is_none());
        }
        other => panic!("the last event is {other:?}"),
    }
    let e = adapt.stop_run(summary.run_id).unwrap_err();
    assert_eq!(e.code, adapt_api::ErrorCode::TrainNotRunning);

    // A run stopped by its id after its first report: a checkpoint, then the end.
    let mut long = form();
    long.config.iters = Some(200);
    long.config.steps_per_report = 1;
    let (tx, events) = std::sync::mpsc::channel();
    let job = adapt
        .start_training(long.request(), move |p| {
            let _ = tx.send(p.clone());
        })
        .unwrap();
    for p in events.iter() {
        if matches!(p, TrainProgress::Engine(adapt_api::TrainEvent::Report(_))) {
            adapt.stop_run(job.run_id()).unwrap();
            break;
        }
    }
    let rest: Vec<TrainProgress> = events.iter().collect();
    let stopped = job.wait().unwrap();
    assert_eq!(stopped.outcome.stop, adapt_api::TrainStop::Cancelled);
    assert!(stopped.outcome.steps < 200);
    match rest.last() {
        Some(TrainProgress::Ended(end)) => {
            assert_eq!(end.status, adapt_api::JobStatus::Cancelled);
            assert!(end.outcome.is_some());
        }
        other => panic!("the last event is {other:?}"),
    }
    assert!(rest.iter().any(|p| matches!(
        p,
        TrainProgress::Engine(adapt_api::TrainEvent::Checkpoint { .. })
    )));
    let adapter = adapt.run_dir(summary.run_id).unwrap();
    let params = GenerateParams {
        max_tokens: 12,
        ..GenerateParams::default()
    };
    let questions = ["What is the Blue Lantern's code?", "Say it again."];
    let alone = |adapter: Option<&std::path::Path>| -> Vec<String> {
        adapt
            .load_model_with_adapter(&smollm2_gguf(), adapter)
            .unwrap();
        let chat = adapt.new_chat(None).unwrap();
        questions
            .iter()
            .map(|q| adapt.chat(chat, q, &params, |_| true).unwrap().text)
            .collect()
    };
    let (base_alone, tuned_alone) = (alone(None), alone(Some(&adapter)));
    assert_ne!(base_alone, tuned_alone, "the adapter changes the replies");
    adapt.load_model(&smollm2_gguf()).unwrap();
    let options = ChatOptions::default;
    let a = adapt.new_chat_on(Vec::new(), options(), None).unwrap();
    let b = adapt
        .new_chat_on(Vec::new(), options(), Some(adapter.clone()))
        .unwrap();
    let mut side_by_side = (Vec::new(), Vec::new());
    for q in questions {
        side_by_side
            .0
            .push(adapt.chat(a, q, &params, |_| true).unwrap().text);
        let reply = adapt.chat(b, q, &params, |_| true).unwrap();
        assert!(reply.stats.reused_tokens > 0 || side_by_side.1.is_empty());
        side_by_side.1.push(reply.text);
    }
    assert_eq!(side_by_side, (base_alone, tuned_alone));
    let key = |chat, name: &str| adapt.save_chat(chat, name).unwrap().key;
    assert!(key(a, "ab-base").adapter.is_empty());
    assert!(!key(b, "ab-tuned").adapter.is_empty());
    let e = adapt
        .new_chat_on(Vec::new(), options(), Some(dir.path().join("nowhere")))
        .unwrap_err();
    assert!(e.message.contains("nowhere"), "{e:?}");

    let mut bad = form();
    bad.config.learning_rate = -1.0;
    bad.config.lora_parameters.rank = 0;
    let fields = |problems: &[adapt_api::FieldProblem]| -> Vec<String> {
        problems.iter().map(|p| p.field.clone()).collect()
    };
    assert_eq!(
        fields(&adapt.check_training(&bad).problems),
        ["config.lora_parameters.rank", "config.learning_rate"]
    );
    let e = adapt.plan_training(&bad.request(), |_| {}).unwrap_err();
    assert_eq!(e.code, "request.invalid", "{e:?}");
    assert!(e.message.contains("learning_rate"), "{e:?}");
    assert_eq!(
        fields(&e.fields),
        ["config.lora_parameters.rank", "config.learning_rate"]
    );
    let mut qlora = form();
    qlora.qlora = true;
    qlora.dataset = "notes.txt".into();
    assert_eq!(
        fields(&adapt.check_training(&qlora).problems),
        ["dataset"],
        "the GGUF's Q4_1 weights are quantized, so QLoRA is fine"
    );

    let report = adapt
        .make_variant(&smollm2_gguf(), Variant::Mlx, |_| {})
        .unwrap();
    assert!(report.output.ends_with("SmolLM2-135M-Instruct.Q4_1-mlx"));
    assert!(adapt.models().iter().any(|m| m.model.path == report.output));
    let e = adapt
        .make_variant(&smollm2_gguf(), Variant::Mlx, |_| {})
        .unwrap_err();
    assert_eq!(e.code, "convert.exists");
    let e = adapt
        .make_variant(&report.output, Variant::Quantized { bits: 3 }, |_| {})
        .unwrap_err();
    assert_eq!(e.code, "quantize.unsupported");

    // Deleting: what Adapt wrote, shown first and removed once confirmed; nothing else.
    let name = "SmolLM2-135M-Instruct.Q4_1-mlx";
    let plan = adapt.removal_plan(name).unwrap();
    assert_eq!(plan.origin, "converted");
    let files: Vec<String> = plan
        .files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(files.contains(&"config.json".to_string()), "{files:?}");
    assert!(
        files.iter().any(|f| f.ends_with(".safetensors")),
        "{files:?}"
    );
    let on_disk: u64 = std::fs::read_dir(&report.output)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(plan.bytes, on_disk);
    let e = adapt.remove_model(name, "not the plan").unwrap_err();
    assert_eq!(e.code, "library.unconfirmed");
    assert!(report.output.exists());
    let removed = adapt.remove_model(name, &plan.confirmation).unwrap();
    assert_eq!(removed, plan);
    assert!(!report.output.exists());
    assert!(!adapt.models().iter().any(|m| m.model.name == name));
    assert_eq!(
        adapt.removal_plan(name).unwrap_err().code,
        "library.not_found"
    );
    // The bundled model, outside this library, is the person's.
    let e = adapt
        .removal_plan(smollm2_gguf().to_str().unwrap())
        .unwrap_err();
    assert_eq!(e.code, "library.not_owned");
    // A model dropped into the models folder by hand is theirs too.
    let by_hand = dir.path().join("models/by-hand.gguf");
    std::fs::copy(smollm2_gguf(), &by_hand).unwrap();
    let e = adapt.removal_plan("by-hand.gguf").unwrap_err();
    assert_eq!(e.code, "library.not_owned");
    assert!(e.message.contains("your file"), "{e:?}");
    // An imported file is removed as the one file it is.
    let imported = adapt.import_model(&smollm2_gguf()).unwrap();
    let plan = adapt.removal_plan(&imported.name).unwrap();
    assert_eq!(plan.origin, "imported");
    assert_eq!(plan.files.len(), 1);
    assert_eq!(plan.files[0].path, imported.path);
    assert_eq!(plan.bytes, std::fs::metadata(smollm2_gguf()).unwrap().len());
    adapt
        .remove_model(&imported.name, &plan.confirmation)
        .unwrap();
    assert!(!imported.path.exists() && smollm2_gguf().exists() && by_hand.exists());
}
