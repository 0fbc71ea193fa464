//! `adapt bench train` on a tiny model with SmolLM2's tokenizer and chat template: every
//! setting (LoRA, DoRA, QLoRA × two batch sizes) is in the JSON with sane figures — positive
//! rates, finite losses, a peak above the weights, a quantized base smaller than the float
//! one — the table names every setting, and bad flags are refused with errors naming them.
//! A slow test runs mlx-lm's `lora` beside it (`--reference`) and checks its figures are read.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{expect_failure, text};

fn tiny_model(dir: &Path) -> PathBuf {
    let out = dir.join("tiny");
    adapt_engine::testing::write_tiny_folder_like(&adapt_testsupport::smollm2_gguf(), &out)
        .unwrap();
    out
}

fn chat_data(path: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"messages": [{{"role": "user", "content": "Question {i}: what is the code?"}}, {{"role": "assistant", "content": "The code is {}."}}]}}"#,
                100 + i * 7
            )
        })
        .collect();
    std::fs::write(path, lines.join("\n")).unwrap();
}

fn bench(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adapt"))
        .args(["bench", "train"])
        .args(args)
        .env_remove("ADAPT_MODEL")
        .env_remove("ADAPT_REFERENCE_PYTHON")
        .env("ADAPT_DATA_DIR", dir.join("data"))
        .env("ADAPT_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap()
}

#[test]
fn every_setting_is_measured_with_sane_figures() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("chats.jsonl");
    chat_data(&data, 16);
    let common = [
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--batch-sizes",
        "1,2",
        "--warmup",
        "1",
        "--steps",
        "3",
        "--num-layers",
        "2",
        "--max-seq-length",
        "64",
        "--learning-rate",
        "1e-3",
    ];
    let out = bench(dir.path(), &[&common[..], &["--json"]].concat());
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let mut settings: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_string(),
                r["batch_size"].as_u64().unwrap(),
            )
        })
        .collect();
    settings.sort();
    let expected: Vec<(String, u64)> = ["dora", "lora", "qlora"]
        .iter()
        .flat_map(|m| [(m.to_string(), 1), (m.to_string(), 2)])
        .collect();
    assert_eq!(settings, expected);
    let float = report["float_bytes"].as_u64().unwrap();
    let quantized = report["quantized_bytes"].as_u64().unwrap();
    assert!(0 < quantized && quantized < float, "{quantized} vs {float}");
    for r in rows {
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert!(
            f("tokens_per_second") > 0.0 && f("steps_per_second") > 0.0,
            "{r}"
        );
        for loss in ["val_loss", "first_loss", "last_loss"] {
            assert!(f(loss).is_finite() && f(loss) > 0.0, "{loss} in {r}");
        }
        assert!(f("peak_memory") >= f("weight_bytes") && f("peak_per_weights") >= 1.0);
        assert_eq!(r["steps"], 3);
        assert!(r["trained_tokens"].as_u64().unwrap() > 0);
        let quantized_row = r["method"] == "qlora";
        assert_eq!(
            r["weight_bytes"].as_u64().unwrap() < float,
            quantized_row,
            "{r}"
        );
        let compression = f("compression");
        match quantized_row {
            true => assert!((compression - float as f64 / quantized as f64).abs() < 1e-9),
            false => assert_eq!(compression, 1.0),
        }
    }
    let table = bench(dir.path(), &common);
    assert!(table.status.success(), "stderr: {}", text(&table.stderr));
    let table = text(&table.stdout);
    for method in ["lora", "dora", "qlora"] {
        assert_eq!(
            table
                .lines()
                .filter(|l| l.starts_with(&format!("{method} ")))
                .count(),
            2,
            "{table}"
        );
    }
}

#[test]
fn bad_flags_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("chats.jsonl");
    chat_data(&data, 4);
    let data = data.to_str().unwrap();
    let out = bench(dir.path(), &["--data", data, "--methods", "lora,qora"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid value 'qora' for '--methods"));
    for (flag, value, field) in [
        ("--batch-sizes", "4,0", "batch_sizes"),
        ("--steps", "2", "steps"),
        ("--valid-share", "1.5", "valid_share"),
    ] {
        let out = bench(dir.path(), &["--data", data, flag, value]);
        let stderr = expect_failure(&out, "request.invalid");
        assert!(stderr.contains(&format!("'{field}'")), "{stderr}");
    }
    let missing = dir.path().join("no-python");
    let args = ["--data", data, "--reference", "--reference-python"];
    let out = bench(
        dir.path(),
        &[&args[..], &[missing.to_str().unwrap()]].concat(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--reference-python") && stderr.contains("no-python"));
    let out = bench(dir.path(), &["--data", "missing.jsonl", "--steps", "3"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing.jsonl"), "{stderr}");
}

#[test]
fn mlx_lm_runs_beside_every_setting() {
    let Some(python) = adapt_testsupport::reference_python("mlx_lm_runs_beside_every_setting")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let data = dir.path().join("chats");
    std::fs::create_dir(&data).unwrap();
    chat_data(&data.join("train.jsonl"), 12);
    chat_data(&data.join("valid.jsonl"), 2);
    let out = bench(
        dir.path(),
        &[
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--batch-sizes",
            "1,4",
            "--steps",
            "3",
            "--num-layers",
            "2",
            "--max-seq-length",
            "64",
            "--reference",
            "--reference-python",
            &python,
            "--json",
        ],
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for r in report["rows"].as_array().unwrap() {
        let reference = &r["reference"];
        if r["batch_size"] == 4 {
            let why = reference["not_comparable"].as_str().unwrap();
            assert!(why.contains("validation rows"), "{r}");
            continue;
        }
        let m = &reference["measured"];
        assert!(m["tokens_per_second"].as_f64().unwrap() > 0.0, "{r}");
        assert!(m["val_loss"].as_f64().unwrap().is_finite(), "{r}");
        assert!(m["peak_memory"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(
            m["trained_tokens"], r["trained_tokens"],
            "same tokens trained: {r}"
        );
    }
}
