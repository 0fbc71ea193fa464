//! `adapt train` end to end on the real SmolLM2: killed (SIGKILL) mid-run, possibly while
//! writing a checkpoint, it resumes with `--resume` and finishes; bad configuration and bad
//! data are refused with errors that name the file, line and key.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use adapt_testsupport::smollm2_gguf;
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
        "14",
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
        "--learning-rate",
        "1e-4",
    ];
    let run_dir = data_dir.join("runs/1");
    // Killed twice, at different moments; checkpoints are written every step, so a kill
    // often lands inside a save.
    for (kill_after, pause_ms) in [(2usize, 0u64), (5, 137)] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_adapt"))
            .args(if kill_after == 2 {
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
        while complete_checkpoints(&run_dir).len() < kill_after {
            assert!(started.elapsed() < Duration::from_secs(300), "no progress");
            assert!(
                child.try_wait().unwrap().is_none(),
                "adapt train ended early"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(pause_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let before = *complete_checkpoints(&run_dir).last().unwrap();
    assert!(before < 14, "the run finished before it was killed");
    let out = Command::new(env!("CARGO_BIN_EXE_adapt"))
        .args(["train", "--resume", "1"])
        .env("ADAPT_DATA_DIR", &data_dir)
        .env("ADAPT_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("from step {before}")), "{stderr}");
    assert!(stdout.contains("Finished after 14 steps"), "{stdout}");
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
    assert_eq!(steps, (1..=14).collect::<Vec<u64>>());
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
