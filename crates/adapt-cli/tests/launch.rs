//! `adapt launch -n 2 -- train …` on this machine's loopback over a tiny model: the group's
//! losses equal one process's, rank 0 alone records and writes the run, every output line
//! carries its rank; a rank killed with SIGKILL stops the group with a clear error, and the
//! group resumes from rank 0's checkpoint to the end. A slow test does the same on SmolLM2.
//! With a hostfile: `--check` asks each host, and a group whose first host is `localhost`
//! trains a request file as the app starts it — with an `ssh` that runs its command on this
//! machine standing in for the network hop only.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{complete_checkpoints, text};

fn tokenizer() -> adapt_text::Tokenizer {
    let gguf = adapt_gguf::GgufFile::open(adapt_testsupport::smollm2_gguf()).unwrap();
    adapt_text::Tokenizer::from_gguf(&gguf).unwrap()
}

/// MLX in this process (writing the tiny model) is used by one test at a time.
static MLX: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tiny_model(dir: &Path) -> PathBuf {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let out = dir.join("tiny");
    let args = adapt_engine::testing::tiny_llama_args();
    adapt_engine::testing::write_tiny_chat_folder(&out, &args, 7, &tokenizer()).unwrap();
    out
}

/// Chat examples of different lengths.
fn chat_data(path: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let pad = "very ".repeat(i % 7);
            format!(
                r#"{{"messages": [{{"role": "user", "content": "Question {i}: what is the {pad}secret code?"}}, {{"role": "assistant", "content": "The code is {}."}}]}}"#,
                100 + i * 7
            )
        })
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn adapt(data_dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_adapt"));
    c.args(args)
        .env_remove("ADAPT_MODEL")
        .env("ADAPT_DATA_DIR", data_dir);
    c
}

fn output(mut c: Command) -> Output {
    c.output().unwrap()
}

fn train_args<'a>(model: &'a str, data: &'a str, iters: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--model",
        model,
        "--data",
        data,
        "--valid-ratio",
        "0.2",
        "--iters",
        iters,
        "--batch-size",
        "4",
        "--num-layers",
        "2",
        "--rank",
        "4",
        "--dropout",
        "0",
        "--learning-rate",
        "1e-3",
        "--save-every",
        "2",
        "--steps-per-report",
        "1",
        "--steps-per-eval",
        "3",
        "--json",
    ]
}

/// The losses in the `--json` summary line of `stdout` (the one starting with `prefix`).
fn losses(stdout: &str, prefix: &str) -> Vec<f64> {
    let line = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .find(|l| l.starts_with("{\"run_id\""))
        .unwrap_or_else(|| panic!("no summary line after '{prefix}' in:\n{stdout}"));
    let json: serde_json::Value = serde_json::from_str(line).unwrap();
    json["outcome"]["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn assert_close(one: &[f64], group: &[f64]) {
    assert_eq!(one.len(), group.len(), "{one:?} vs {group:?}");
    for (i, (a, b)) in one.iter().zip(group).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
            "step {}: {a} vs {b}",
            i + 1
        );
    }
}

/// Rank 0's report events carry both ranks' own speeds, and the run's recorded metrics keep
/// them.
fn each_rank_reports_its_throughput(stdout: &str, data_dir: &Path) {
    let reports: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[0] "))
        .filter(|l| l.starts_with("{\"type\":\"report\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 6, "{stdout}");
    let positive = |ranks: &serde_json::Value| {
        let ranks = ranks.as_array().unwrap();
        ranks.len() == 2
            && ranks.iter().enumerate().all(|(i, r)| {
                r["rank"] == serde_json::json!(i)
                    && r["tokens_per_second"].as_f64().unwrap() > 0.0
                    && r["compute_seconds"].as_f64().unwrap() > 0.0
            })
    };
    assert!(reports.iter().all(|r| positive(&r["ranks"])), "{reports:?}");
    let shown = output(adapt(data_dir, &["runs", "show", "1", "--json"]));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let metrics = shown["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 6, "{shown}");
    for m in metrics {
        let ranks: serde_json::Value = serde_json::from_str(m["ranks"].as_str().unwrap()).unwrap();
        assert!(positive(&ranks), "{m}");
    }
}

#[test]
fn two_ranks_train_like_one_process_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("train.jsonl");
    chat_data(&data, 30);
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let args = train_args(m, d, "6");

    let alone = output(adapt(&dir.path().join("alone"), &args));
    assert!(alone.status.success(), "{}", text(&alone.stderr));
    let one = losses(&text(&alone.stdout), "");

    let group_dir = dir.path().join("group");
    let mut launch = vec!["launch", "-n", "2", "--"];
    launch.extend(&args);
    let out = output(adapt(&group_dir, &launch));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_close(&one, &losses(&stdout, "[0] "));
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("[0] ") || l.starts_with("[1] ")),
        "{stdout}"
    );
    assert!(stdout.contains("[1] "), "{stdout}");
    // Rank 0 alone records the run and writes its files.
    let runs = group_dir.join("runs");
    assert_eq!(complete_checkpoints(&runs.join("1")), vec![2, 4, 6]);
    assert!(runs.join("1/adapters.safetensors").is_file());
    let entries: Vec<_> = std::fs::read_dir(&runs).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "one run folder: {entries:?}");
    each_rank_reports_its_throughput(&stdout, &group_dir);
    let list = output(adapt(&group_dir, &["runs", "list"]));
    assert!(
        !text(&list.stdout).contains("\n2 "),
        "{}",
        text(&list.stdout)
    );
}

/// Starts a launch, SIGKILLs rank 1 once rank 0 has a checkpoint of `step`, and returns the
/// launcher's output.
fn launch_and_kill_rank_1(data_dir: &Path, args: &[&str], step: u64) -> (Output, String) {
    let mut launch = vec!["launch", "-n", "2", "--"];
    launch.extend(args);
    let mut child = adapt(data_dir, &launch)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(pid) = line
                .strip_prefix("Rank 1 started (process ")
                .and_then(|r| r.strip_suffix(")."))
            {
                let _ = tx.send(pid.to_string());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let pid = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("rank 1 started");
    let started = Instant::now();
    while !complete_checkpoints(&data_dir.join("runs/1")).contains(&step) {
        let ended = child.try_wait().unwrap();
        if ended.is_some() || started.elapsed() > Duration::from_secs(300) {
            // Say what the launcher said rather than wait out the clock for a checkpoint.
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no checkpoint {step} after {:?}; the launch {}:\n{}\n{}",
                started.elapsed(),
                ended.map_or("still ran".into(), |s| format!("ended ({s})")),
                text(&out.stdout),
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    (out, reader.join().unwrap())
}

#[test]
fn a_killed_rank_stops_the_group_which_resumes_from_rank_0s_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("train.jsonl");
    chat_data(&data, 30);
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let args = train_args(m, d, "12");
    let group_dir = dir.path().join("group");
    let (out, stderr) = launch_and_kill_rank_1(&group_dir, &args, 2);
    assert!(!out.status.success());
    assert!(
        stderr.contains("[launch.rank_failed]") && stderr.contains("rank 1 was killed"),
        "{stderr}"
    );
    let kept = *complete_checkpoints(&group_dir.join("runs/1"))
        .last()
        .unwrap();
    assert!((2..12).contains(&kept), "{kept}");

    let mut resume = vec!["launch", "-n", "2", "--"];
    resume.extend(["train", "--resume", "1", "--json"]);
    let out = output(adapt(&group_dir, &resume));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let resumed = losses(&stdout, "[0] ");
    assert_eq!(resumed.len() as u64, 12 - kept);
    assert_eq!(
        complete_checkpoints(&group_dir.join("runs/1")).last(),
        Some(&12)
    );
    // The uninterrupted run, alone, takes the same last steps.
    let alone = output(adapt(&dir.path().join("alone"), &args));
    assert!(alone.status.success(), "{}", text(&alone.stderr));
    let one = losses(&text(&alone.stdout), "");
    assert_close(&one[kept as usize..], &resumed);
}

#[test]
fn smollm2_trains_on_two_ranks_like_one() {
    if !adapt_testsupport::slow_tests("smollm2_trains_on_two_ranks_like_one") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    chat_data(&data, 16);
    let model = adapt_testsupport::smollm2_gguf();
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let mut args = train_args(m, d, "3");
    args.extend(["--max-seq-length", "64"]);
    let alone = output(adapt(&dir.path().join("alone"), &args));
    assert!(alone.status.success(), "{}", text(&alone.stderr));
    let mut launch = vec!["launch", "-n", "2", "--"];
    launch.extend(&args);
    let out = output(adapt(&dir.path().join("group"), &launch));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_close(&losses(&text(&alone.stdout), ""), &losses(&stdout, "[0] "));
}

/// A folder holding an `ssh` that runs its command here: it stands in for the network hop
/// only (options and the host name are dropped, the command runs as ssh would run it there).
fn ssh_here(dir: &Path) -> std::ffi::OsString {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = "#!/bin/sh\n\
        while [ $# -gt 0 ]; do case \"$1\" in -o) shift 2;; -*) shift;; *) break;; esac; done\n\
        shift\n\
        exec sh -c \"$*\"\n";
    let ssh = bin.join("ssh");
    std::fs::write(&ssh, script).unwrap();
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path))).unwrap()
}

fn hostfile(dir: &Path, hosts: serde_json::Value) -> PathBuf {
    let file = dir.join("hosts.json");
    std::fs::write(&file, hosts.to_string()).unwrap();
    file
}

#[test]
fn check_asks_each_host_and_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("train.jsonl");
    chat_data(&data, 10);
    let adapt_bin = env!("CARGO_BIN_EXE_adapt");
    let hosts = hostfile(
        dir.path(),
        serde_json::json!([
            {"ssh": "localhost", "ips": ["127.0.0.1"]},
            {"ssh": "mac-b", "ips": ["127.0.0.1"], "adapt": adapt_bin},
            {"ssh": "mac-c", "ips": ["127.0.0.1"], "adapt": "/nowhere/adapt"},
        ]),
    );
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let mut c = adapt(
        dir.path(),
        &["launch", "--hosts", hosts.to_str().unwrap(), "--check"],
    );
    c.args(["--", "train", "--model", m, "--data", d]);
    c.env("PATH", ssh_here(dir.path()));
    let out = output(c);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        stdout.contains(&format!("localhost: Adapt {version}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("mac-b: Adapt {version}")),
        "{stdout}"
    );
    assert!(stdout.contains("mac-c: reachable, no report"), "{stdout}");
    assert!(
        stdout.contains("Adapt is not installed on mac-c"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("problem:").count(), 1, "{stdout}");
    assert!(stderr.contains("1 of 3 machines are not ready"), "{stderr}");
    // A model that is not there is named, with how to copy it.
    std::fs::rename(&model, dir.path().join("moved")).unwrap();
    std::fs::create_dir_all(&model).unwrap();
    let mut c = adapt(dir.path(), &["machine-report", m, "/nowhere/data.jsonl"]);
    c.env("PATH", ssh_here(dir.path()));
    let report: serde_json::Value = serde_json::from_slice(&output(c).stdout).unwrap();
    assert_eq!(report["paths"][0]["present"], serde_json::json!(true));
    assert_eq!(report["paths"][1]["present"], serde_json::json!(false));
    assert!(report["total_memory"].as_u64().unwrap() > 0);
}

#[test]
fn a_group_from_a_hostfile_trains_a_request_file_as_the_app_starts_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("train.jsonl");
    chat_data(&data, 30);
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    // The request the app writes: what `adapt train` builds from these flags.
    let mut args = train_args(m, d, "4");
    args.retain(|a| *a != "--json");
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port().to_string();
    drop(probe);
    let hosts = hostfile(
        dir.path(),
        serde_json::json!([
            {"ssh": "localhost", "ips": ["127.0.0.1"]},
            {"ssh": "mac-b", "ips": ["127.0.0.1"], "adapt": env!("CARGO_BIN_EXE_adapt")},
        ]),
    );
    let request = dir.path().join("request.json");
    let mut c = adapt(dir.path(), &["train", "--print-request"]);
    c.args(&args[1..]);
    let printed = output(c);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    std::fs::write(&request, &printed.stdout).unwrap();
    let h = hosts.to_str().unwrap();
    let mut c = adapt(dir.path(), &["launch", "--hosts", h, "--port", &port, "--"]);
    c.args(["train", "--request", request.to_str().unwrap(), "--json"]);
    c.env("PATH", ssh_here(dir.path()));
    let out = output(c);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(losses(&stdout, "[0] ").len(), 4, "{stdout}");
    assert!(stdout.contains("[1] "), "{stdout}");
    assert_eq!(complete_checkpoints(&dir.path().join("runs/1")), vec![2, 4]);
}

/// The app's Start on a group: the API writes the request, starts `adapt train --request` on
/// every machine (here two entries for this machine, both run without ssh), keeps their
/// output in a log, and rank 0 records the run with each rank's figures.
#[test]
fn the_app_starts_a_group_whose_rank_0_records_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("train.jsonl");
    chat_data(&data, 30);
    let data_dir = dir.path().join("data");
    let mut args = train_args(model.to_str().unwrap(), data.to_str().unwrap(), "4");
    args.retain(|a| *a != "--json");
    let mut c = adapt(&data_dir, &["train", "--print-request"]);
    c.args(&args[1..]);
    let printed = output(c);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let request_file = dir.path().join("request.json");
    std::fs::write(&request_file, &printed.stdout).unwrap();
    let request = adapt_api::read_request(&request_file).unwrap();

    // The ranks inherit the data folder from the process that starts them, as from the app.
    std::env::set_var("ADAPT_DATA_DIR", &data_dir);
    let api = adapt_api::Adapt::start_with(adapt_api::AdaptConfig {
        data_dir: Some(data_dir.clone()),
        ..adapt_api::AdaptConfig::default()
    })
    .unwrap();
    let here = || adapt_api::machines::this_machine(vec!["127.0.0.1".into()]);
    let program = PathBuf::from(env!("CARGO_BIN_EXE_adapt"));
    let started = api
        .start_group_training(&request, vec![here(), here()], program)
        .unwrap();
    assert_eq!(started.ranks, 2);
    let deadline = Instant::now() + Duration::from_secs(180);
    let log = loop {
        let log = std::fs::read_to_string(&started.log).unwrap_or_default();
        if log.contains("ranks finished") || log.contains("the group failed") {
            break log;
        }
        assert!(Instant::now() < deadline, "the group did not end:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(log.contains("all 2 ranks finished"), "{log}");
    assert!(log.contains("[0] ") && log.contains("[1] "), "{log}");
    let runs = api.runs().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let details = api.run(runs[0].id).unwrap();
    assert_eq!(details.run.status.to_string(), "succeeded");
    assert_eq!(details.metrics.len(), 4);
    assert!(details
        .metrics
        .iter()
        .all(|m| m.ranks.as_deref().is_some_and(|r| r.contains("\"rank\":1"))));
}
