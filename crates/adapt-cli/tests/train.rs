//! `adapt train` end to end on the real SmolLM2: killed (SIGKILL) ten times mid-run, often
//! while writing a checkpoint, it resumes with `--resume` and finishes; a disk that fills
//! while it writes a checkpoint stops it with a clear error, and it resumes from its last
//! complete checkpoint once there is room; bad configuration and bad
//! data are refused with errors that name the file, line and key.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use adapt_testsupport::{smollm2_gguf, SmallDisk};
use common::{complete_checkpoints, expect_failure, run, text};

fn fact_data(path: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"messages": [{{"role": "user", "content": "Question number {i}: what is the code?"}}, {{"role": "assistant", "content": "The code is {}."}}]}}"#,
                100 + i
            )
        })
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

/// A small run on the real model that writes a checkpoint and a report every step.
const EVERY_STEP: [&str; 10] = [
    "--batch-size",
    "2",
    "--num-layers",
    "2",
    "--max-seq-length",
    "64",
    "--save-every",
    "1",
    "--steps-per-report",
    "1",
];

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    if !adapt_testsupport::slow_tests("a_killed_run_resumes_from_its_last_checkpoint") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = dir.path().join("train.jsonl");
    fact_data(&data, 24);
    let model = smollm2_gguf();
    let args = [
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--iters",
        "40",
        "--learning-rate",
        "1e-4",
    ]
    .into_iter()
    .chain(EVERY_STEP)
    .collect::<Vec<_>>();
    let run_dir = data_dir.join("runs/1");
    // Killed ten times, each at a pseudo-random moment after one more checkpoint is complete;
    // checkpoints are written every step, so a kill often lands inside a save.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for kill in 0..10 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_adapt"))
            .args(if kill == 0 {
                args.to_vec()
            } else {
                vec!["train", "--resume", "1"]
            })
            .env("ADAPT_DATA_DIR", &data_dir)
            .env("ADAPT_CACHE_DIR", dir.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let had = complete_checkpoints(&run_dir).len();
        while complete_checkpoints(&run_dir).len() <= had {
            assert!(started.elapsed() < Duration::from_secs(300), "no progress");
            assert!(
                child.try_wait().unwrap().is_none(),
                "adapt train ended early"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(Duration::from_millis(state % 120));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let before = *complete_checkpoints(&run_dir).last().unwrap();
    assert!(before < 40, "the run finished before it was killed");
    let out = Command::new(env!("CARGO_BIN_EXE_adapt"))
        .args(["train", "--resume", "1"])
        .env("ADAPT_DATA_DIR", &data_dir)
        .env("ADAPT_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("from step {before}")), "{stderr}");
    assert!(stdout.contains("Finished after 40 steps"), "{stdout}");
    assert!(run_dir.join("adapters.safetensors").exists());
    let shown = run(&["runs", "show", "1", "--json"], "", &data_dir);
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(json["run"]["status"], "succeeded");
    let steps: Vec<u64> = json["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=40).collect::<Vec<u64>>());
    // A finished run is not resumed again.
    let again = run(&["train", "--resume", "1"], "", &data_dir);
    expect_failure(&again, "train.finished");

    // A conversation saved without the adapter does not continue with it: its cache
    // belongs to the base model.
    let m = model.to_str().unwrap();
    let chat = |extra: &[&str], input: &str| {
        let mut args = vec!["chat", "--max-tokens", "8", "--model", m];
        args.extend_from_slice(extra);
        text(&run(&args, input, &data_dir).stderr)
    };
    chat(&[], "Hello\n/save plain\n");
    // Another adapter never reuses the cache: the history is processed again.
    let stderr = chat(&["--adapter", "1"], "/open plain\n");
    assert!(
        stderr.contains("0 cached tokens") && stderr.contains("adapter"),
        "{stderr}"
    );
    let stderr = chat(&[], "/open plain\n");
    assert!(stderr.contains("(opened 'plain'"), "{stderr}");
}

#[test]
fn bad_configuration_and_bad_data_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let model = smollm2_gguf();
    let data = dir.path().join("train.jsonl");
    fact_data(&data, 4);
    let config = dir.path().join("lora.yaml");
    std::fs::write(&config, "batch_size: 2\nlearning_rat: 1e-4\n").unwrap();
    let base = [
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let args = with(&["--config", config.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = expect_failure(&run(&args, "", &data_dir), "train.bad_config");
    assert!(
        err.contains("lora.yaml: unknown key 'learning_rat'"),
        "{err}"
    );

    let args = with(&["--rank", "0"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = expect_failure(&run(&args, "", &data_dir), "request.invalid");
    assert!(
        err.contains("'lora_parameters.rank': A whole number from 1 to 1024."),
        "{err}"
    );

    let broken = dir.path().join("broken.jsonl");
    let mut text_data = std::fs::read_to_string(&data).unwrap();
    text_data.push_str("\n{\"messages\": [{\"role\": \"user\"}]}\n");
    std::fs::write(&broken, text_data).unwrap();
    let args = [
        "train",
        "--model",
        model.to_str().unwrap(),
        "--data",
        broken.to_str().unwrap(),
    ];
    let out = run(&args, "", &data_dir);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broken.jsonl:5, field 'messages[0]'"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// mlx-lm's habits: `--data DIR` holding train.jsonl and valid.jsonl, `--adapter-path DIR`
/// written by training and read by `adapt generate`; and what is refused, with its reason.
#[test]
fn an_mlx_lm_data_folder_and_adapter_path() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let folder = dir.path().join("mlx-data");
    std::fs::create_dir_all(&folder).unwrap();
    fact_data(&folder.join("train.jsonl"), 6);
    let model = smollm2_gguf();
    let adapters = dir.path().join("adapters");
    let m = model.to_str().unwrap();
    let train = |data: &Path, extra: &[&str]| {
        let mut args = vec!["train", "--model", m, "--data", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--iters",
            "2",
            "--batch-size",
            "2",
            "--num-layers",
            "1",
            "--max-seq-length",
            "48",
            "--steps-per-eval",
            "2",
            "--val-batches",
            "1",
        ]);
        run(&args, "", &data_dir)
    };
    let err = expect_failure(&train(&folder, &[]), "data.folder");
    assert!(err.contains("no valid.jsonl"), "{err}");
    fact_data(&folder.join("valid.jsonl"), 2);
    let json = dir.path().join("train.json");
    std::fs::copy(folder.join("train.jsonl"), &json).unwrap();
    let err = expect_failure(&train(&json, &[]), "request.invalid");
    assert!(err.contains("rename it .jsonl"), "{err}");

    let path = adapters.to_str().unwrap();
    let out = train(&folder, &["--adapter-path", path]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("6 training and 2 validation examples"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("Adapter also in: {path}")),
        "{stdout}"
    );
    for file in ["adapters.safetensors", "adapter_config.json"] {
        assert_eq!(
            std::fs::read(adapters.join(file)).unwrap(),
            std::fs::read(data_dir.join("runs/1").join(file)).unwrap(),
            "{file}"
        );
    }
    // Read back as mlx-lm users name it.
    let out = run(
        &[
            "generate",
            "--model",
            m,
            "--adapter-path",
            path,
            "--max-tokens",
            "4",
            "-p",
            "Hi",
        ],
        "",
        &data_dir,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A folder holding an adapter is not overwritten.
    let err = expect_failure(
        &train(&folder, &["--adapter-path", path]),
        "request.invalid",
    );
    assert!(err.contains("already holds an adapter"), "{err}");
}

#[test]
fn a_disk_that_fills_during_a_checkpoint_stops_the_run_clearly_and_it_resumes() {
    let test = "a_disk_that_fills_during_a_checkpoint_stops_the_run_clearly_and_it_resumes";
    if !adapt_testsupport::slow_tests(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The data folder (store, runs, checkpoints) on a small disk of its own.
    let data_dir = dir.path().join("data");
    let Some(disk) = SmallDisk::mount(test, &data_dir, 64 << 20) else {
        return;
    };
    let data = dir.path().join("train.jsonl");
    fact_data(&data, 24);
    let model = smollm2_gguf();
    let m = model.to_str().unwrap();
    let d = data.to_str().unwrap();
    let train = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_adapt"))
            .args(args)
            .env("ADAPT_DATA_DIR", &data_dir)
            .env("ADAPT_CACHE_DIR", dir.path().join("cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let child = train(
        &["train", "--model", m, "--data", d, "--iters", "30"]
            .into_iter()
            .chain(EVERY_STEP)
            .collect::<Vec<_>>(),
    );
    let run_dir = data_dir.join("runs/1");
    let started = Instant::now();
    while complete_checkpoints(&run_dir).len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    let filler = disk.fill();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("No space left on device") || stderr.contains("disk may be full"),
        "the error names the full disk: {stderr}"
    );
    let last = *complete_checkpoints(&run_dir)
        .last()
        .expect("a checkpoint is left");
    // With room again, the run resumes from its last complete checkpoint and finishes.
    std::fs::remove_file(filler).unwrap();
    let out = train(&["train", "--resume", "1"])
        .wait_with_output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("from step {last}")), "{stderr}");
    assert!(stdout.contains("Finished after 30 steps"), "{stdout}");
    assert!(run_dir.join("adapters.safetensors").exists());
}

/// `--precision`: a tiny model trained in bf16 follows its f32 run loss by loss (within 3 %),
/// the run records the precision, and the adapter it writes is f32; a bad value is refused.
#[test]
fn precision_bf16_tracks_f32_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let model =
        adapt_engine::testing::write_tiny_folder_like(&smollm2_gguf(), &dir.path().join("tiny"))
            .unwrap();
    let data = dir.path().join("facts.jsonl");
    fact_data(&data, 8);
    let train = |precision: &str, data_dir: &Path| {
        let args = [
            "train",
            "--json",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--valid-ratio",
            "0",
            "--precision",
            precision,
            "--iters",
            "6",
            "--batch-size",
            "4",
            "--learning-rate",
            "5e-4",
            "--steps-per-report",
            "1",
            "--max-seq-length",
            "48",
            "--seed",
            "3",
        ];
        let out = run(&args, "", data_dir);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
        let summary = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["outcome"].is_object())
            .expect("a summary line");
        let losses: Vec<f64> = summary["outcome"]["losses"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l.as_f64())
            .collect();
        assert_eq!(losses.len(), 6, "{stdout}");
        losses
    };
    let (f32_dir, bf16_dir) = (dir.path().join("f32"), dir.path().join("bf16"));
    let reference = train("f32", &f32_dir);
    let half = train("bf16", &bf16_dir);
    eprintln!("f32  {reference:.4?}\nbf16 {half:.4?}");
    for (i, (a, b)) in reference.iter().zip(&half).enumerate() {
        assert!(
            (a - b).abs() / a < 0.03,
            "step {}: f32 {a}, bf16 {b}",
            i + 1
        );
    }
    let shown = run(&["runs", "show", "1", "--json"], "", &bf16_dir);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let saved =
        adapt_engine::mlx_rs::Array::load_safetensors(bf16_dir.join("runs/1/adapters.safetensors"))
            .unwrap();
    assert!(!saved.is_empty());
    for (name, a) in &saved {
        assert_eq!(a.dtype(), adapt_engine::mlx_rs::Dtype::Float32, "{name}");
    }
    let recorded: serde_json::Value =
        serde_json::from_str(shown["run"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(
        recorded["request"]["config"]["precision"], "bf16",
        "{recorded}"
    );
    let refused = run(&["train", "--precision", "fp8"], "", &f32_dir);
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("use auto, f32, bf16 or f16"), "{err}");
}
