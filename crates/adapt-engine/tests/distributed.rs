//! Two processes on this machine's loopback, joined over MLX's ring backend: the collectives
//! give what they should; data-parallel training of a tiny model takes the steps one process
//! takes on the same global batches (losses, validation losses and the adapter); rank 0 alone
//! writes files; a group whose rank is killed fails with `distributed.peer_lost` and resumes
//! from rank 0's checkpoint to the run an uninterrupted process makes.
//!
//! Each test runs its ranks as children: this test binary again, on that one test, with
//! MLX's environment (`MLX_RANK`, `MLX_HOSTFILE`) and `RANK_TASK` set.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};

use adapt_data::cache::CacheWriter;
use adapt_data::render::Tokenized;
use adapt_data::TokenCache;
use adapt_engine::distributed::{loopback_hostfile, world};
use adapt_engine::mlx_rs::Array;
use adapt_engine::testing::{random_model, tiny_llama_args, F32};
use adapt_engine::train::{train, Hooks, RunFiles, TrainConfig, TrainData, TrainEvent};
use serde_json::json;

/// MLX in this process is used by one test at a time.
static MLX: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MLX.lock().unwrap_or_else(|e| e.into_inner())
}

/// The task of a child rank: (test name, folder shared with the parent).
fn task() -> Option<(String, PathBuf)> {
    let t = std::env::var("RANK_TASK").ok()?;
    let (name, dir) = t.split_once('=')?;
    Some((name.to_string(), PathBuf::from(dir)))
}

/// Starts `n` ranks of `test` sharing `dir`; `env` adds variables per rank.
fn spawn_ranks(test: &str, n: usize, dir: &Path, env: &[(&str, &str)]) -> Vec<Child> {
    let hostfile = dir.join(format!("hosts-{}.json", std::process::id()));
    std::fs::write(&hostfile, loopback_hostfile(n).unwrap()).unwrap();
    (0..n)
        .map(|rank| {
            Command::new(std::env::current_exe().unwrap())
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env("MLX_RANK", rank.to_string())
                .env("MLX_HOSTFILE", &hostfile)
                .env("RANK_TASK", format!("{test}={}", dir.display()))
                .envs(env.iter().copied())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn wait_all(children: Vec<Child>) -> Vec<ExitStatus> {
    children
        .into_iter()
        .map(|mut c| c.wait().unwrap())
        .collect()
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (the rank did not report)", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn two_ranks_sum_and_gather() {
    if let Some((_, dir)) = task() {
        let group = world().unwrap().expect("a rank joins its group");
        let r = group.rank() as f32;
        let sum = group
            .all_sum(&Array::from_slice(&[r + 1.0, 2.0], &[2]))
            .unwrap();
        let gathered = group
            .all_gather(&Array::from_slice(&[r * 10.0, r], &[1, 2]))
            .unwrap();
        group.eval([&sum, &gathered]).unwrap();
        group.barrier().unwrap();
        let shared = group.broadcast(&Array::from_f32(r + 5.0)).unwrap();
        group.eval([&shared]).unwrap();
        let report = json!({
            "size": group.size(),
            "sum": sum.as_slice::<f32>(),
            "gathered": gathered.as_slice::<f32>(),
            "gathered_shape": gathered.shape(),
            "broadcast": shared.item_cast::<f32>(),
        });
        std::fs::write(
            dir.join(format!("rank-{}.json", group.rank())),
            report.to_string(),
        )
        .unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let statuses = wait_all(spawn_ranks("two_ranks_sum_and_gather", 2, dir.path(), &[]));
    assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
    for rank in 0..2 {
        let r = read_json(&dir.path().join(format!("rank-{rank}.json")));
        assert_eq!(r["size"], 2);
        assert_eq!(r["sum"], json!([3.0, 4.0]));
        assert_eq!(r["gathered"], json!([0.0, 0.0, 10.0, 1.0]));
        assert_eq!(r["gathered_shape"], json!([2, 2]));
        assert_eq!(r["broadcast"], json!(5.0));
    }
}

/// `n` sequences cycling through eight tokens from different starts, each of its own length
/// (so the ranks' rows hold different numbers of trained tokens).
fn counting_data(dir: &Path, name: &str, n: usize, seed: u32) -> TokenCache {
    let path = dir.join(name);
    let mut w = CacheWriter::create(&path).unwrap();
    for i in 0..n {
        let len = 10 + i;
        let start = i as u32 * 3 + seed;
        let tokens: Vec<u32> = (0..len as u32).map(|j| 10 + (start + j) % 8).collect();
        let mask = (0..len).map(|j| j > len / 3).collect();
        w.push(i as u64 + 1, &Tokenized { tokens, mask }).unwrap();
    }
    w.finish().unwrap();
    TokenCache::open(&path).unwrap()
}

fn config() -> TrainConfig {
    let mut c = TrainConfig {
        iters: Some(8),
        learning_rate: 2e-3,
        batch_size: 4,
        steps_per_report: 1,
        steps_per_eval: 4,
        save_every: 2,
        seed: 7,
        max_grad_norm: Some(1.0),
        ..TrainConfig::default()
    };
    c.lora_parameters.rank = 4;
    c.lora_parameters.dropout = 0.0;
    c
}

/// What a training process reports: its step losses, validation losses, the adapter's
/// weights at the end, and its error code when it failed.
fn train_here(
    run_dir: &Path,
    data_dir: &Path,
    resume: bool,
    die_after: Option<u64>,
) -> serde_json::Value {
    std::fs::create_dir_all(data_dir).unwrap();
    let train_split = counting_data(data_dir, "train.bin", 29, 1);
    let valid_split = counting_data(data_dir, "valid.bin", 6, 100);
    let data = TrainData {
        train: &train_split,
        valid: Some(&valid_split),
        pad_id: 0,
    };
    // 29 examples in batches of 4: the last batch has one row, so rank 1 has none there.
    let mut model = random_model(&tiny_llama_args(), 4, Some(4), F32).unwrap();
    let files = RunFiles {
        dir: run_dir.to_path_buf(),
    };
    let (mut losses, mut val_losses, mut reports) = (Vec::new(), Vec::new(), Vec::new());
    let hooks = Hooks {
        prober: None,
        on_event: &mut |e| match e {
            TrainEvent::Report(r) => {
                losses.push(json!([r.step, r.train_loss]));
                reports.push(json!({"trained_tokens": r.trained_tokens, "ranks": r.ranks}));
            }
            TrainEvent::Evaluated { step, val_loss, .. } => {
                val_losses.push(json!([step, val_loss]))
            }
            TrainEvent::Checkpoint { step, .. } if Some(*step) == die_after => {
                // The whole process, at once, as a crash or `kill -9` would.
                let pid = std::process::id().to_string();
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            _ => {}
        },
        cancel: &|| false,
    };
    let outcome = train(&mut model, &data, &config(), &files, resume, hooks);
    let error = outcome
        .as_ref()
        .err()
        .map(|e| json!([e.code(), e.to_string()]));
    let weights: serde_json::Value = adapt_engine::adapters::files::adapter_weights(&model)
        .unwrap()
        .into_iter()
        .map(|(k, a)| (k, json!(a.as_slice::<f32>())))
        .collect();
    json!({
        "losses": losses,
        "val_losses": val_losses,
        "weights": weights,
        "error": error,
        "reports": reports,
    })
}

/// A child rank of a training test: trains in its own run folder and reports.
fn train_rank(dir: &Path) {
    let group = world().unwrap().expect("a rank joins its group");
    let rank = group.rank();
    let resume = std::env::var("RESUME").is_ok();
    let die_after = std::env::var("DIE_AFTER").ok().map(|s| s.parse().unwrap());
    let die_after = die_after.filter(|_| rank == 1);
    let report = train_here(
        &dir.join(format!("run-{rank}")),
        &dir.join(format!("data-{rank}")),
        resume,
        die_after,
    );
    let name = format!("rank-{rank}{}.json", if resume { "-resumed" } else { "" });
    std::fs::write(dir.join(name), report.to_string()).unwrap();
}

fn close(a: &serde_json::Value, b: &serde_json::Value, tol: f64, what: &str) {
    match (a, b) {
        (serde_json::Value::Array(x), serde_json::Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{what}: lengths differ");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                close(p, q, tol, &format!("{what}[{i}]"));
            }
        }
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            assert_eq!(x.len(), y.len(), "{what}: keys differ");
            for (k, p) in x {
                close(p, &y[k], tol, &format!("{what}.{k}"));
            }
        }
        _ => {
            let (p, q) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!((p - q).abs() <= tol * (1.0 + p.abs()), "{what}: {p} vs {q}");
        }
    }
}

/// Losses and weights of 2 ranks equal 1 process's within this (relative) tolerance: the
/// sums run in another order, in float32.
const TOLERANCE: f64 = 1e-4;

fn checkpoints(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every report of a group carries both ranks' own figures, the same on both ranks: positive
/// speeds and compute times, and tokens that add up to the run's trained tokens. A process
/// alone reports none.
fn each_rank_reports_its_throughput(
    one: &serde_json::Value,
    zero: &serde_json::Value,
    first: &serde_json::Value,
) {
    let reports = |v: &serde_json::Value| v["reports"].as_array().unwrap().clone();
    assert!(reports(one).iter().all(|r| r["ranks"] == json!([])));
    let (mut tokens, mut per_rank) = (0, [0u64; 2]);
    for (r0, r1) in reports(zero).iter().zip(reports(first).iter()) {
        let ranks = r0["ranks"].as_array().unwrap();
        assert_eq!(ranks.len(), 2, "{r0}");
        for (i, rank) in ranks.iter().enumerate() {
            assert_eq!(rank["rank"], json!(i));
            // A rank with no row of a short last batch trains no token there.
            let trained = rank["trained_tokens"].as_u64().unwrap();
            let speed = rank["tokens_per_second"].as_f64().unwrap();
            assert_eq!(speed > 0.0, trained > 0, "{rank}");
            assert!(rank["compute_seconds"].as_f64().unwrap() > 0.0, "{rank}");
            assert!(rank["exchange_seconds"].as_f64().unwrap() >= 0.0, "{rank}");
            per_rank[i] += trained;
            tokens += trained;
        }
        assert_eq!(tokens, r0["trained_tokens"].as_u64().unwrap());
        let tokens_of = |r: &serde_json::Value| -> Vec<serde_json::Value> {
            r["ranks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["trained_tokens"].clone())
                .collect()
        };
        assert_eq!(tokens_of(r0), tokens_of(r1));
    }
    assert_eq!(reports(zero).len(), 8);
    assert!(per_rank.iter().all(|&t| t > 0), "{per_rank:?}");
}

#[test]
fn two_ranks_train_like_one_process() {
    if let Some((_, dir)) = task() {
        return train_rank(&dir);
    }
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let one = train_here(&d.join("alone"), &d.join("data-alone"), false, None);
    let statuses = wait_all(spawn_ranks("two_ranks_train_like_one_process", 2, d, &[]));
    assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
    let (zero, first) = (
        read_json(&d.join("rank-0.json")),
        read_json(&d.join("rank-1.json")),
    );
    assert_eq!(zero["error"], serde_json::Value::Null);
    assert_eq!(one["losses"].as_array().unwrap().len(), 8);
    for rank in [&zero, &first] {
        close(&one["losses"], &rank["losses"], TOLERANCE, "losses");
        close(
            &one["val_losses"],
            &rank["val_losses"],
            TOLERANCE,
            "val_losses",
        );
        close(&one["weights"], &rank["weights"], TOLERANCE, "weights");
    }
    each_rank_reports_its_throughput(&one, &zero, &first);
    // Rank 0 alone writes: its checkpoints and adapter; nothing from rank 1.
    assert_eq!(checkpoints(&d.join("alone")), checkpoints(&d.join("run-0")));
    assert!(d.join("run-0/adapters.safetensors").is_file());
    assert!(checkpoints(&d.join("run-1")).is_empty());
    assert!(!d.join("run-1/adapters.safetensors").exists());
    assert!(!d.join("run-1/adapter_config.json").exists());
}

#[test]
fn a_group_resumes_after_a_rank_is_killed() {
    if let Some((_, dir)) = task() {
        return train_rank(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let test = "a_group_resumes_after_a_rank_is_killed";
    // Rank 1 is killed right after the checkpoint of step 4.
    let statuses = wait_all(spawn_ranks(test, 2, d, &[("DIE_AFTER", "4")]));
    assert!(!statuses[1].success(), "rank 1 was killed: {statuses:?}");
    let zero = read_json(&d.join("rank-0.json"));
    assert_eq!(
        zero["error"][0], "distributed.peer_lost",
        "{}",
        zero["error"]
    );
    assert!(
        zero["error"][1].as_str().unwrap().contains("resum"),
        "{}",
        zero["error"]
    );
    assert_eq!(
        checkpoints(&d.join("run-0")).last().unwrap(),
        "step-0000004"
    );
    // The group again, resuming: rank 1 starts with nothing of its own.
    std::fs::remove_dir_all(d.join("run-1")).unwrap();
    let statuses = wait_all(spawn_ranks(test, 2, d, &[("RESUME", "1")]));
    assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
    let resumed = read_json(&d.join("rank-0-resumed.json"));
    assert_eq!(resumed["error"], serde_json::Value::Null);
    let _mlx = lock();
    let one = train_here(&d.join("alone"), &d.join("data-alone"), false, None);
    let tail = serde_json::Value::Array(one["losses"].as_array().unwrap()[4..].to_vec());
    close(&tail, &resumed["losses"], TOLERANCE, "resumed losses");
    close(&one["weights"], &resumed["weights"], TOLERANCE, "weights");
    let first = read_json(&d.join("rank-1-resumed.json"));
    close(
        &one["weights"],
        &first["weights"],
        TOLERANCE,
        "rank 1's weights",
    );
}
