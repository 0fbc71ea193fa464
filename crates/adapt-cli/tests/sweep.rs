//! `adapt sweep` end to end on a tiny random model folder and generated data: a sweep killed
//! (SIGKILL) in the middle of a trial resumes with `--resume` and finishes with every trial
//! run exactly once — the interrupted one from its checkpoint — and `adapt sweep show` ranks
//! them; a space naming an unknown setting is refused by name.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{expect_failure, run, text};

fn tiny_model(dir: &Path) -> PathBuf {
    let gguf = adapt_testsupport::smollm2_gguf();
    adapt_engine::testing::write_tiny_folder_like(&gguf, &dir.join("tiny")).unwrap()
}

fn fact_data(path: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"messages": [{{"role": "user", "content": "What is code {}?"}}, {{"role": "assistant", "content": "Code {} is blue."}}]}}"#,
                i % 4,
                i % 4
            )
        })
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn complete_checkpoints(run_dir: &Path) -> usize {
    std::fs::read_dir(run_dir.join("checkpoints"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join("state.json").exists())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_killed_sweep_resumes_without_losing_or_repeating_a_trial() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let model = tiny_model(dir.path());
    let data = dir.path().join("facts.jsonl");
    fact_data(&data, 24);
    let space = dir.path().join("space.yaml");
    // Nothing is pruned (reduction 1), so the second trial is surely training when killed.
    std::fs::write(
        &space,
        "fixed: {iters: 8, batch_size: 4, num_layers: 1, steps_per_report: 2}\n\
         space:\n  learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}\n\
         trials: 3\nseed: 5\nrungs: [0.25, 0.5]\nreduction: 1\n",
    )
    .unwrap();
    let (m, d, s) = (
        model.to_str().unwrap(),
        data.to_str().unwrap(),
        space.to_str().unwrap(),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_adapt"))
        .args(["sweep", "--model", m, "--data", d, "--space", s])
        .args(["--valid-ratio", "0.25", "--max-seq-length", "64"])
        .env("ADAPT_DATA_DIR", &data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Trial 1 is run 2: kill it once it has written a checkpoint (steps 2, 4, 6, 8).
    let started = Instant::now();
    while complete_checkpoints(&data_dir.join("runs/2")) < 1 {
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "adapt sweep ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // The killed process's job is taken for dead once its heartbeat is stale.
    let started = Instant::now();
    let resumed = loop {
        let out = run(&["sweep", "--resume", "1"], "", &data_dir);
        if out.status.success() {
            break out;
        }
        let stderr = expect_failure(&out, "sweep.running");
        assert!(started.elapsed() < Duration::from_secs(60), "{stderr}");
        std::thread::sleep(Duration::from_secs(2));
    };
    let (stdout, stderr) = (text(&resumed.stdout), text(&resumed.stderr));
    assert!(stderr.contains("Trial 1 (run 2), resumed"), "{stderr}");
    assert!(!stderr.contains("Trial 0 "), "trial 0 ran again: {stderr}");
    assert!(stdout.contains("Best: run"), "{stdout}");

    let shown = run(&["sweep", "show", "1", "--json"], "", &data_dir);
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(json["sweep"]["status"], "succeeded");
    let trials = json["trials"].as_array().unwrap();
    let mut numbers: Vec<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [0, 1, 2]);
    assert!(trials
        .iter()
        .all(|t| t["state"] == "completed" && t["steps"] == 8));
    // One run per trial: none was started twice.
    let runs = run(&["runs", "list", "--json"], "", &data_dir);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3);
    // The resumed trial's metrics hold every step once.
    let shown = run(&["runs", "show", "2", "--json"], "", &data_dir);
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let steps: Vec<u64> = json["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [2, 4, 6, 8]);
    let table = text(&run(&["sweep", "show", "1"], "", &data_dir).stdout);
    assert!(
        table.contains("RANK") && table.contains("(best)"),
        "{table}"
    );

    // A space naming an unknown setting is refused by name before anything runs.
    std::fs::write(&space, "space: {learning_rat: [1.0e-3]}\n").unwrap();
    let out = run(
        &["sweep", "--model", m, "--data", d, "--space", s],
        "",
        &data_dir,
    );
    let stderr = expect_failure(&out, "sweep.unknown_knob");
    assert!(
        stderr.contains("'learning_rat'") && stderr.contains("space.yaml"),
        "{stderr}"
    );
}
