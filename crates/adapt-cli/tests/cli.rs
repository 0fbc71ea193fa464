//! The `adapt` binary end to end: real answers from the real model, and clear errors (a code,
//! a message, a non-zero exit, never a panic) for bad model files.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::text;

use adapt_gguf::test_util::GgufBuilder;
use adapt_gguf::GgmlType;
use adapt_testsupport::smollm2_gguf as smollm2;

/// Runs `adapt` with its data directory in a fresh temporary folder.
fn adapt(args: &[&str], stdin: &str) -> Output {
    let data = tempfile::tempdir().unwrap();
    common::run(args, stdin, data.path())
}

/// Runs `adapt generate` on `model` and checks it fails cleanly with `code`.
fn fails_with(model: &Path, code: &str) -> String {
    let out = adapt(
        &[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "hi",
        ],
        "",
    );
    common::expect_failure(&out, code)
}

#[test]
fn generate_answers_with_the_real_model() {
    let model = smollm2();
    let out = adapt(
        &[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "What is the capital of France?",
            "--max-tokens",
            "24",
        ],
        "",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stdout.contains("Paris"), "stdout: {stdout}");
    assert!(stderr.contains("tok/s"), "stderr: {stderr}");
}

#[test]
fn chat_holds_a_multi_turn_conversation_reusing_the_cache() {
    let model = smollm2();
    let out = adapt(
        &[
            "chat",
            "--model",
            model.to_str().unwrap(),
            "--max-tokens",
            "24",
        ],
        "What is the capital of France?\nAnd what is the capital of Germany?\n/exit\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stdout.contains("Paris"), "stdout: {stdout}");
    assert!(stdout.contains("Berlin"), "stdout: {stdout}");
    let stats: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("[prompt"))
        .collect();
    assert_eq!(stats.len(), 2, "stderr: {stderr}");
    assert!(stats[0].contains("(0 reused"), "{}", stats[0]);
    assert!(!stats[1].contains("(0 reused"), "{}", stats[1]);
}

#[test]
fn missing_model_is_a_clear_error() {
    let stderr = fails_with(Path::new("/nonexistent/model.gguf"), "model.not_found");
    assert!(stderr.contains("/nonexistent/model.gguf"));
}

#[test]
fn truncated_and_corrupt_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(smollm2()).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &real[..real.len() / 3]).unwrap();
    let stderr = fails_with(&truncated, "gguf.truncated");
    assert!(stderr.contains("truncated.gguf"), "{stderr}");

    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"this is not a model at all").unwrap();
    fails_with(&garbage, "gguf.bad_magic");
}

#[test]
fn unsupported_architecture_lists_what_is_supported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bert.gguf");
    let bytes = GgufBuilder::new()
        .kv_str("general.architecture", "bert")
        .tensor("token_embd.weight", &[8, 4], GgmlType::F32)
        .build();
    std::fs::write(&path, bytes).unwrap();
    let stderr = fails_with(&path, "model.unsupported_architecture");
    assert!(
        stderr.contains("'bert'") && stderr.contains("llama"),
        "{stderr}"
    );
}

#[test]
fn doctor_reports_the_runtime_and_the_models() {
    let dir = smollm2().parent().unwrap().to_path_buf();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_adapt"))
        .arg("doctor")
        .env("ADAPT_DATA_DIR", data.path())
        .env("ADAPT_MODELS_DIR", &dir)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("Backend"), "{stdout}");
    assert!(
        stdout.contains("SmolLM2-135M-Instruct.Q4_1.gguf  llama"),
        "{stdout}"
    );
}

/// The device (on MLX's CPU build, whose runtime has no GPU): `--device gpu` (or
/// `ADAPT_DEVICE=gpu`) refuses to start with the cause, `auto` runs on the CPU and says why
/// once, `cpu` runs quietly, and doctor shows which and why, in text and JSON.
#[test]
fn the_device_is_chosen_and_doctor_says_which_and_why() {
    let data = tempfile::tempdir().unwrap();
    let doctor = |args: &[&str]| {
        let out = common::run(args, "", data.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["device"].clone()
    };
    let auto = doctor(&["doctor", "--json"]);
    if auto["runtime"] != "Cpu" {
        // A GPU runtime: the other branches are checked on the GPU machine (docs/gpu.md).
        return;
    }
    assert_eq!(auto["backend"], "Cpu");
    assert_eq!(auto["choice"]["asked"], "auto");
    assert_eq!(auto["choice"]["fell_back"], true);
    let reason = auto["choice"]["reason"].as_str().unwrap();
    assert!(reason.contains("no GPU backend"), "{reason}");
    let cpu = doctor(&["doctor", "--json", "--device", "cpu"]);
    assert_eq!(cpu["choice"]["asked"], "cpu");
    assert_eq!(cpu["choice"]["fell_back"], false);

    let refused = common::run(&["--device", "gpu", "doctor"], "", data.path());
    let stderr = common::expect_failure(&refused, "device.gpu_unavailable");
    assert!(
        stderr.contains("the GPU was required but cannot be used: no GPU backend"),
        "{stderr}"
    );
    let by_env = Command::new(env!("CARGO_BIN_EXE_adapt"))
        .arg("doctor")
        .env("ADAPT_DATA_DIR", data.path())
        .env("ADAPT_DEVICE", "gpu")
        .output()
        .unwrap();
    common::expect_failure(&by_env, "device.gpu_unavailable");
    let human = text(&adapt(&["doctor", "--device", "auto"], "").stdout);
    assert!(
        human.contains("Device          CPU (asked auto; fell back: no GPU backend"),
        "{human}"
    );

    // A command that computes says it once on auto, and nothing when the CPU was asked for.
    let model = smollm2();
    let generate = |device: &str| {
        let args = [
            "generate",
            "--device",
            device,
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "Hi",
            "--max-tokens",
            "2",
        ];
        let out = adapt(&args, "");
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        stderr.matches("Running on the CPU: ").count()
    };
    assert_eq!(generate("auto"), 1);
    assert_eq!(generate("cpu"), 0);
}

/// The second half of falling back from MLX's CUDA build (the first, finding the CPU runtime
/// and starting again on it, is the engine's `runtime` tests and the GPU machine's `fallback`
/// stage): a program started again on the CPU runtime with the cause says it — doctor as the
/// reason it fell back, a computing command once — and `gpu` refuses with it.
#[test]
fn a_program_started_again_on_the_cpu_runtime_says_why() {
    let data = tempfile::tempdir().unwrap();
    let cause = "CUDA (GPU): cudaMallocManaged failed: no CUDA-capable device is detected";
    let restarted = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_adapt"))
            .args(args)
            .env("ADAPT_DATA_DIR", data.path())
            .env_remove("ADAPT_DEVICE")
            .env("ADAPT_RESTARTED_ON_CPU", cause)
            .output()
            .unwrap()
    };
    let out = restarted(&["doctor", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let device =
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["device"].clone();
    if device["runtime"] != "Cpu" {
        panic!(
            "these tests run on MLX's CPU runtime, not {}",
            device["runtime"]
        );
    }
    assert_eq!(device["choice"]["fell_back"], true);
    let reason = device["choice"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("{cause}; started again on MLX's CPU runtime in /")),
        "{reason}"
    );

    let model = smollm2();
    let args = [
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "Hi",
        "--max-tokens",
        "2",
    ];
    let out = restarted(&args);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr
            .matches(&format!("Running on the CPU: {cause}"))
            .count(),
        1,
        "{stderr}"
    );

    let refused = restarted(&["--device", "gpu", "doctor"]);
    let stderr = common::expect_failure(&refused, "device.gpu_unavailable");
    assert!(stderr.contains(cause), "{stderr}");
}
