//! mlx-lm's `lora` beside `adapt bench train`: each setting trained by `mlx_lm.lora` in the
//! reference Python (a benchmark aid, never needed to run Adapt) on the same model, data
//! split, steps, batch, rank, scale, layers, max length and learning rate, the base held as
//! Adapt holds it (dequantized for LoRA and DoRA, quantized for QLoRA, float parameters in
//! the same dtype). Its reports are read the same way: trained tokens/s and steps/s are
//! medians over the steps after the warm-up, the peak spans training, and the validation
//! loss is measured after the last step.
//!
//! Where the two cannot do the same work, the row says so instead of a figure: mlx-lm reads
//! JSONL data only, and needs at least a batch of validation rows.

use std::path::{Path, PathBuf};
use std::process::Command;

use adapt_data::{Split, SplitRatios};
use adapt_engine::train::bench::median;

use crate::adapt::Adapt;
use crate::bench_train::{
    BenchMethod, Reference, ReferenceFigures, TrainBenchReport, TrainBenchRequest,
};
use crate::error::{ApiError, ErrorCode};

/// The reference runner, a script over `mlx_lm.lora`.
const LORA_SUITE: &str = include_str!("../../../scripts/reference/lora_suite.py");

/// The model folder and data folder mlx-lm reads.
struct Inputs {
    model: PathBuf,
    data: Result<PathBuf, String>,
}

impl Adapt {
    /// Runs every setting of `report` with `mlx_lm.lora` in `python`, in `work`; `on_setting`
    /// hears of each as it starts. Returns the references in the report's row order.
    pub fn bench_train_reference(
        &self,
        python: &Path,
        report: &TrainBenchReport,
        on_setting: &mut dyn FnMut(BenchMethod, usize),
    ) -> Result<Vec<Reference>, ApiError> {
        let work = std::env::temp_dir().join(format!("adapt-train-ref-{}", std::process::id()));
        std::fs::create_dir_all(&work).map_err(|e| ApiError::io("create", &work, e))?;
        let result = self.reference_rows(python, report, &work, on_setting);
        let _ = std::fs::remove_dir_all(&work);
        result
    }

    fn reference_rows(
        &self,
        python: &Path,
        report: &TrainBenchReport,
        work: &Path,
        on_setting: &mut dyn FnMut(BenchMethod, usize),
    ) -> Result<Vec<Reference>, ApiError> {
        let req = &report.request;
        let inputs = self.reference_inputs(req, work)?;
        let dtype = report.float_dtype.as_str();
        let mut refs = Vec::new();
        for row in &report.rows {
            on_setting(row.method, row.batch_size);
            let data = match &inputs.data {
                Ok(d) => d,
                Err(why) => {
                    refs.push(Reference::NotComparable(why.clone()));
                    continue;
                }
            };
            if report.valid_examples < row.batch_size as u64 {
                refs.push(Reference::NotComparable(format!(
                    "mlx-lm needs a batch of validation rows ({}), there are {}",
                    row.batch_size, report.valid_examples
                )));
                continue;
            }
            let setting = Setting {
                python,
                model: &inputs.model,
                data,
                method: row.method,
                batch: row.batch_size,
                dtype,
            };
            refs.push(Reference::Measured(run_setting(req, &setting, work)?));
        }
        Ok(refs)
    }

    /// A model folder mlx-lm loads (a GGUF file converted) and the data split as Adapt split
    /// it, in mlx-lm's layout.
    fn reference_inputs(&self, req: &TrainBenchRequest, work: &Path) -> Result<Inputs, ApiError> {
        let model = if req.model.is_dir() {
            req.model.clone()
        } else {
            let out = work.join("model");
            self.convert_model(&req.model, &out, |_| {})?;
            out
        };
        let data = if req.data.is_dir() {
            Ok(req.data.clone())
        } else if req.data.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            Err("mlx-lm reads JSONL data; give a .jsonl file or a data folder".into())
        } else {
            let ratios = SplitRatios {
                valid: req.valid_share,
                test: 0.0,
                seed: req.seed,
            };
            Ok(split_jsonl(&req.data, ratios, &work.join("data"))?)
        };
        Ok(Inputs { model, data })
    }
}

/// Writes the non-blank lines of the JSONL file `path` into `out/train.jsonl` and
/// `out/valid.jsonl` as `ratios` assigns them (the split Adapt prepares from a valid file).
fn split_jsonl(path: &Path, ratios: SplitRatios, out: &Path) -> Result<PathBuf, ApiError> {
    let text = std::fs::read_to_string(path).map_err(|e| ApiError::io("read", path, e))?;
    let (mut train, mut valid) = (String::new(), String::new());
    let lines = text.lines().filter(|l| !l.trim().is_empty());
    for (index, line) in lines.enumerate() {
        let split = match ratios.assign(index as u64) {
            Split::Train => &mut train,
            _ => &mut valid,
        };
        split.push_str(line.trim_end_matches('\r'));
        split.push('\n');
    }
    std::fs::create_dir_all(out).map_err(|e| ApiError::io("create", out, e))?;
    for (name, content) in [("train.jsonl", train), ("valid.jsonl", valid)] {
        let file = out.join(name);
        std::fs::write(&file, content).map_err(|e| ApiError::io("write", &file, e))?;
    }
    Ok(out.to_path_buf())
}

/// One setting for the reference.
struct Setting<'a> {
    python: &'a Path,
    model: &'a Path,
    data: &'a Path,
    method: BenchMethod,
    batch: usize,
    dtype: &'a str,
}

/// Trains one setting with `mlx_lm.lora` and reads its reports.
fn run_setting(
    req: &TrainBenchRequest,
    s: &Setting<'_>,
    work: &Path,
) -> Result<ReferenceFigures, ApiError> {
    let iters = req.warmup + req.steps;
    let name = format!("{}-{}", s.method.name(), s.batch);
    let config = work.join(format!("{name}.yaml"));
    let yaml = format!(
        "lora_parameters: {{rank: {}, scale: 20.0, dropout: 0.0}}\n",
        req.rank
    );
    std::fs::write(&config, yaml).map_err(|e| ApiError::io("write", &config, e))?;
    let fine_tune = match s.method {
        BenchMethod::Dora => "dora",
        _ => "lora",
    };
    let base = match s.method {
        BenchMethod::Qlora => "quantized",
        _ => "dense",
    };
    let never = (iters + 1).to_string();
    let output = Command::new(s.python)
        .arg("-c")
        .arg(LORA_SUITE)
        .args([
            "--base",
            base,
            "--dtype",
            s.dtype,
            "--train",
            "--mask-prompt",
        ])
        .arg("--model")
        .arg(s.model)
        .arg("--data")
        .arg(s.data)
        .args(["--fine-tune-type", fine_tune])
        .args(["--num-layers", &req.num_layers.to_string()])
        .args(["--batch-size", &s.batch.to_string()])
        .args(["--iters", &iters.to_string()])
        .args(["--max-seq-length", &req.max_seq_length.to_string()])
        .args(["--learning-rate", &req.learning_rate.to_string()])
        .args(["--seed", &req.seed.to_string()])
        .args(["--steps-per-report", "1", "--steps-per-eval", &never])
        .args(["--save-every", &never, "--val-batches", "-1"])
        .arg("--adapter-path")
        .arg(work.join(format!("{name}-adapter")))
        .arg("-c")
        .arg(&config)
        .output()
        .map_err(|e| reference_failed(s.python, &e.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `ADAPT_TRACE=1` reaches mlx-lm's side too: its `trace:` lines (its step's graph).
    if adapt_engine::device::trace_requested() {
        for line in stderr.lines().filter(|l| l.starts_with("trace: ")) {
            eprintln!("{line}");
        }
    }
    if !output.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(reference_failed(s.python, &tail.join("\n")));
    }
    read_reports(&stdout, req.warmup).map_err(|m| reference_failed(s.python, &m))
}

fn reference_failed(python: &Path, detail: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ApiIo,
        format!("mlx-lm's lora (with {}) failed: {detail}", python.display()),
    )
}

/// The figures in the runner's `REPORT` (one per step) and `VAL` lines.
fn read_reports(stdout: &str, warmup: u64) -> Result<ReferenceFigures, String> {
    let json = |line: &str, prefix: &str| -> Option<serde_json::Value> {
        serde_json::from_str(line.strip_prefix(prefix)?).ok()
    };
    let reports: Vec<serde_json::Value> =
        stdout.lines().filter_map(|l| json(l, "REPORT ")).collect();
    let val_loss = stdout
        .lines()
        .filter_map(|l| json(l, "VAL "))
        .find_map(|v| v["val_loss"].as_f64())
        .ok_or("it printed no validation loss")?;
    let num = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let measured: Vec<&serde_json::Value> = reports
        .iter()
        .filter(|r| num(r, "iteration") > warmup as f64)
        .collect();
    if measured.is_empty() {
        return Err(format!(
            "it printed no reports after the warm-up; its output:\n{stdout}"
        ));
    }
    let trained = |r: Option<&&serde_json::Value>| r.map_or(0.0, |r| num(r, "trained_tokens"));
    let before = reports
        .iter()
        .rfind(|r| num(r, "iteration") <= warmup as f64);
    Ok(ReferenceFigures {
        tokens_per_second: median(measured.iter().map(|r| num(r, "tokens_per_second"))),
        steps_per_second: median(measured.iter().map(|r| num(r, "iterations_per_second"))),
        peak_memory: reports
            .iter()
            .map(|r| (num(r, "peak_memory") * 1e9) as u64)
            .max()
            .unwrap_or(0),
        trained_tokens: (trained(measured.last()) - trained(before.as_ref())) as u64,
        val_loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_after_the_warm_up() {
        let out = "noise\n\
            REPORT {\"iteration\": 1, \"tokens_per_second\": 5, \"iterations_per_second\": 1, \"trained_tokens\": 10, \"peak_memory\": 0.5}\n\
            REPORT {\"iteration\": 2, \"tokens_per_second\": 30, \"iterations_per_second\": 3, \"trained_tokens\": 22, \"peak_memory\": 0.7}\n\
            REPORT {\"iteration\": 3, \"tokens_per_second\": 10, \"iterations_per_second\": 1, \"trained_tokens\": 32, \"peak_memory\": 0.6}\n\
            REPORT {\"iteration\": 4, \"tokens_per_second\": 20, \"iterations_per_second\": 2, \"trained_tokens\": 45, \"peak_memory\": 0.6}\n\
            VAL {\"val_loss\": 1.25}\n";
        let f = read_reports(out, 1).unwrap();
        assert_eq!(f.tokens_per_second, 20.0);
        assert_eq!(f.steps_per_second, 2.0);
        assert_eq!(f.peak_memory, 700_000_000);
        assert_eq!(f.trained_tokens, 35);
        assert_eq!(f.val_loss, 1.25);
        assert!(read_reports(out, 4)
            .unwrap_err()
            .contains("no reports after"));
        let no_val = out.replace("VAL", "val");
        assert!(read_reports(&no_val, 1)
            .unwrap_err()
            .contains("validation loss"));
    }

    #[test]
    fn a_jsonl_file_is_split_as_adapt_splits_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.jsonl");
        let rows: Vec<String> = (0..40)
            .map(|i| format!("{{\"text\": \"row {i}\"}}"))
            .collect();
        std::fs::write(&file, rows.join("\n\n")).unwrap();
        let ratios = SplitRatios {
            valid: 0.25,
            test: 0.0,
            seed: 3,
        };
        let out = split_jsonl(&file, ratios, &dir.path().join("split")).unwrap();
        let read = |n: &str| std::fs::read_to_string(out.join(n)).unwrap();
        let (train, valid) = (read("train.jsonl"), read("valid.jsonl"));
        assert_eq!(train.lines().count() + valid.lines().count(), 40);
        for (i, row) in rows.iter().enumerate() {
            let in_valid = valid.lines().any(|l| l == row);
            assert_eq!(in_valid, ratios.assign(i as u64) == Split::Valid, "{row}");
        }
    }
}
