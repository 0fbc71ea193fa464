//! Parity with the reference (mlx-lm): every folder under `tests/fixtures/parity` is a tiny
//! random model that mlx-lm built with its own model classes and saved, with the logits mlx-lm
//! computed for fixed token ids — in one pass, and step by step through its KV cache
//! (`scripts/reference/make-parity-fixtures.sh` regenerates them). We load each folder and
//! must reproduce both. Folders with a `model.gguf` hold the same model as llama.cpp stores
//! it (written with the `gguf` package's writer and name table): the GGUF file must give the
//! same logits, load whole (tokenizer, chat template), and convert to a folder that gives them
//! too — in our engine and, with the reference environment, in mlx-lm.
//!
//! Tolerances: weights held as mlx-lm holds them (stored dtype, quantized kept) must match to
//! 1e-4 whatever the dtype (the JSON keeps 6 significant digits); the CPU default
//! (dense float32, quantized weights dequantized) to 1e-3 for float32 checkpoints and 4% of
//! the range for half-precision ones (the reference computes in half precision, we do not).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use adapt_engine::convert::gguf_to_folder;
use adapt_engine::load::{folder, gguf};
use adapt_engine::mlx_rs::ops::indexing::IndexOp;
use adapt_engine::mlx_rs::{Array, Dtype};
use adapt_engine::models::{QuantConfig, Weights};
use adapt_engine::testing::max_abs_diff;
use adapt_engine::{ChatMessage, KvCache, LoadOptions, Model, WeightFormat};
use serde_json::Value;

static MLX: Mutex<()> = Mutex::new(());

fn fixtures() -> PathBuf {
    adapt_testsupport::repo_root().join("tests/fixtures/parity")
}

struct Reference {
    ids: Vec<i32>,
    prefill: usize,
    logits: Vec<Vec<f32>>,
    step_logits: Vec<Vec<f32>>,
    dtype: String,
}

fn reference(dir: &Path) -> Reference {
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let rows = |key: &str| -> Vec<Vec<f32>> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect()
            })
            .collect()
    };
    Reference {
        ids: json["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap() as i32)
            .collect(),
        prefill: json["prefill"].as_u64().unwrap() as usize,
        logits: rows("logits"),
        step_logits: rows("step_logits"),
        dtype: json["dtype"].as_str().unwrap().to_string(),
    }
}

fn matrix(rows: &[Vec<f32>]) -> Array {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Array::from_slice(&flat, &[rows.len() as i32, rows[0].len() as i32])
}

fn to_f32(a: &Array) -> Array {
    a.as_dtype(Dtype::Float32).unwrap()
}

/// One-pass logits `[L, V]` and step-by-step last-position logits `[L - prefill, V]`.
fn run(model: &Model, r: &Reference) -> (Array, Array) {
    let ids = Array::from_slice(&r.ids, &[1, r.ids.len() as i32]);
    let full = model.forward(&ids, &mut model.new_cache()).unwrap();
    let mut cache: Vec<KvCache> = model.new_cache();
    let mut steps = Vec::new();
    let first = &r.ids[..r.prefill];
    model
        .forward_last(
            &Array::from_slice(first, &[1, first.len() as i32]),
            &mut cache,
        )
        .unwrap();
    for &id in &r.ids[r.prefill..] {
        let last = model
            .forward_last(&Array::from_slice(&[id], &[1, 1]), &mut cache)
            .unwrap();
        steps.push(last);
    }
    let steps = adapt_engine::mlx_rs::ops::concatenate(&steps, 0).unwrap();
    (to_f32(&full.index(0)), to_f32(&steps))
}

/// The stored dtype of the reference's weights.
fn stored(r: &Reference) -> WeightFormat {
    WeightFormat {
        dtype: match r.dtype.as_str() {
            "float16" => Dtype::Float16,
            "bfloat16" => Dtype::Bfloat16,
            _ => Dtype::Float32,
        },
        dequantize: false,
    }
}

fn check(case: &str, format: Option<WeightFormat>, tolerance: impl Fn(&Reference) -> f32) {
    let dir = fixtures().join(case);
    let r = reference(&dir);
    let ckpt = folder::read(&dir).unwrap_or_else(|e| panic!("{case}: {e}"));
    let format = format.unwrap_or(stored(&r));
    let model = ckpt.build(format).unwrap_or_else(|e| panic!("{case}: {e}"));
    compare(case, &model, &r, tolerance(&r));
}

/// `model`'s logits, in one pass and through the cache, against the reference's.
fn compare(case: &str, model: &Model, r: &Reference, tol: f32) {
    let (full, steps) = run(model, r);
    let want_full = matrix(&r.logits);
    // The reference's step rows: positions prefill .. L-1, each fed alone after a prefill.
    let want_steps = matrix(&r.step_logits);
    assert_eq!(full.shape(), want_full.shape(), "{case}: logits shape");
    let d_full = max_abs_diff(&full, &want_full);
    let d_steps = max_abs_diff(&steps, &want_steps);
    eprintln!("{case}: max |Δ| one pass {d_full:.2e}, cached steps {d_steps:.2e} (tol {tol:.1e})");
    assert!(d_full <= tol, "{case}: one-pass logits differ by {d_full}");
    assert!(
        d_steps <= tol,
        "{case}: cached-step logits differ by {d_steps}"
    );
}

fn range(r: &Reference) -> f32 {
    let flat = r.logits.iter().flatten();
    let (lo, hi) = flat.fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    hi - lo
}

/// As mlx-lm holds them (stored dtype, quantized weights kept quantized) the same kernels
/// run on the same values: only the reference's rounding to 6 significant digits remains.
fn as_reference(_: &Reference) -> f32 {
    1e-4
}

/// The fixtures with a GGUF copy.
fn gguf_cases() -> Vec<String> {
    let names: Vec<String> = cases()
        .into_iter()
        .filter(|c| fixtures().join(c).join("model.gguf").is_file())
        .collect();
    assert!(names.len() >= 15, "GGUF copies missing: {names:?}");
    names
}

fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("reference.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_fixture_matches_mlx_lm_as_stored() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let names = cases();
    assert!(names.len() >= 15, "fixtures missing: {names:?}");
    for case in &names {
        check(case, None, as_reference);
    }
}

#[test]
fn every_fixture_matches_mlx_lm_dense_f32() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let dense = WeightFormat {
        dtype: Dtype::Float32,
        dequantize: true,
    };
    for case in &cases() {
        // Half-precision references carry their own rounding, which an f32 run does not.
        check(case, Some(dense), |r| {
            if r.dtype == "float32" {
                1e-3
            } else {
                0.04 * range(r)
            }
        });
    }
}

#[test]
fn every_supported_architecture_has_a_fixture() {
    let names = cases();
    for arch in adapt_engine::models::SUPPORTED_ARCHITECTURES {
        if *arch == "smollm" {
            continue; // a Llama under another name (GGUF only)
        }
        assert!(
            names.iter().any(|n| n == arch),
            "no parity fixture for '{arch}'"
        );
    }
}

#[test]
fn every_gguf_architecture_has_a_gguf_fixture() {
    let archs: Vec<String> = gguf_cases()
        .iter()
        .map(|c| {
            let file = adapt_gguf::GgufFile::open(fixtures().join(c).join("model.gguf")).unwrap();
            file.architecture().unwrap().to_string()
        })
        .collect();
    for arch in adapt_engine::models::GGUF_ARCHITECTURES {
        if matches!(*arch, "mistral" | "smollm") {
            continue; // Llama under other names (llama.cpp writes Mistral models as `llama`)
        }
        assert!(
            archs.iter().any(|a| a == arch),
            "no GGUF fixture for '{arch}'"
        );
    }
    let names = adapt_engine::models::architecture_names();
    assert!(
        names.contains(&"gemma3") && names.contains(&"gemma3_text"),
        "{names:?}"
    );
}

#[test]
fn an_unknown_model_type_lists_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "bert", "hidden_size": 8}"#,
    )
    .unwrap();
    let err = match folder::read(dir.path()) {
        Ok(_) => panic!("a bert folder loaded"),
        Err(e) => e,
    };
    assert_eq!(err.code(), "model.unsupported_architecture");
    let message = err.to_string();
    for arch in ["llama", "qwen3", "phi3", "gemma2", "gemma3_text"] {
        assert!(message.contains(arch), "{message}");
    }
}

#[test]
fn every_gguf_copy_gives_mlx_lms_logits() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    for case in gguf_cases() {
        let dir = fixtures().join(&case);
        let r = reference(&dir);
        let path = dir.join("model.gguf");
        let (_, args, arrays) = gguf::read(&path, None).unwrap_or_else(|e| panic!("{case}: {e}"));
        for dequantize in [false, true] {
            let format = WeightFormat {
                dtype: Dtype::Float32,
                dequantize,
            };
            let mut w = Weights::new(&path, arrays.clone(), QuantConfig::default(), format);
            let model = Model::new(args.clone(), &mut w).unwrap_or_else(|e| panic!("{case}: {e}"));
            // Everything but llama.cpp's RoPE factor tensors (read into the settings) is used.
            let unused: Vec<&str> = (w.unused().into_iter())
                .filter(|n| !n.starts_with("rope_f"))
                .collect();
            assert!(unused.is_empty(), "{case}: unused tensors {unused:?}");
            compare(&format!("{case}.gguf"), &model, &r, 1e-4);
        }
    }
}

#[test]
fn every_gguf_copy_loads_with_its_tokenizer_and_chat_template() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    for case in gguf_cases() {
        let path = fixtures().join(&case).join("model.gguf");
        let lm = adapt_engine::load(&path, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let ids = lm.tokenizer.encode("hello the world", false).unwrap();
        assert!(!ids.is_empty(), "{case}");
        assert_eq!(
            lm.tokenizer.decode(&ids, false).unwrap().trim_start(),
            "hello the world",
            "{case}"
        );
        let template = lm.chat_template.as_ref().expect("a chat template");
        let messages = [ChatMessage::new("user", "hi")];
        let prompt = template.render(&messages, true).unwrap();
        assert!(prompt.contains("hi"), "{case}: {prompt}");
    }
}

/// Converted folders, made once per test binary run.
fn converted(root: &Path, case: &str) -> PathBuf {
    let out = root.join(case);
    if !out.exists() {
        let src = fixtures().join(case).join("model.gguf");
        gguf_to_folder(&src, &out, &mut |_| {}).unwrap_or_else(|e| panic!("{case}: {e}"));
    }
    out
}

#[test]
fn every_gguf_copy_converts_to_a_folder_with_the_same_logits() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::tempdir().unwrap();
    let cases = gguf_cases();
    for case in &cases {
        let dir = converted(root.path(), case);
        let r = reference(&fixtures().join(case));
        let model = folder::read(&dir)
            .and_then(|c| c.build(stored(&r)))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        compare(&format!("{case} converted"), &model, &r, 1e-4);
    }
    let Some(python) = adapt_testsupport::reference_python("gguf_folders_load_in_mlx_lm") else {
        return;
    };
    // mlx-lm loads every converted folder as its own model class and computes the logits.
    let ids: Vec<String> = reference(&fixtures().join(&cases[0]))
        .ids
        .iter()
        .map(|i| i.to_string())
        .collect();
    let mut args = vec![ids.join(",")];
    args.extend(
        cases
            .iter()
            .map(|c| root.path().join(c).display().to_string()),
    );
    let out = adapt_testsupport::run_reference(&python, "folder_logits.py", &args);
    let json: Value = serde_json::from_slice(&out).unwrap();
    for case in &cases {
        let r = reference(&fixtures().join(case));
        let dir = root.path().join(case).display().to_string();
        let rows: Vec<Vec<f32>> = serde_json::from_value(json[&dir].clone()).unwrap();
        let d = max_abs_diff(&matrix(&rows), &matrix(&r.logits));
        eprintln!("{case}: mlx-lm on the converted folder, max |Δ| {d:.2e}");
        assert!(
            d <= 1e-4,
            "{case}: mlx-lm's logits of the converted folder differ by {d}"
        );
    }
}

/// `name` and `a` of an mlx-lm fixture as a Hugging Face checkpoint of the architecture stores
/// them: GPT-2's unprefixed names and Conv1D (`[in, out]`) projections, and Mixtral's and
/// Qwen3-MoE's experts one by one.
fn hugging_face_layout(case: &str, name: &str, a: &Array) -> Vec<(String, Array)> {
    let experts = |name: &str| -> Vec<(String, Array)> {
        (0..a.shape()[0])
            .map(|e| {
                (
                    name.replace("switch_mlp", &format!("experts.{e}")),
                    a.index(e),
                )
            })
            .collect()
    };
    match case {
        "gpt2" => {
            let bare = name.strip_prefix("model.").unwrap_or(name).to_string();
            let conv1d = [".c_attn.weight", ".c_proj.weight", ".c_fc.weight"];
            if conv1d.iter().any(|s| bare.ends_with(s)) {
                vec![(bare, a.t())]
            } else {
                vec![(bare, a.clone())]
            }
        }
        "mixtral" if name.contains("switch_mlp") => {
            let (stem, w) = [("gate_proj", "w1"), ("down_proj", "w2"), ("up_proj", "w3")]
                .into_iter()
                .find(|(p, _)| name.contains(p))
                .unwrap();
            let name = name.replace(&format!("switch_mlp.{stem}"), &format!("switch_mlp.{w}"));
            experts(&name)
        }
        "qwen3_moe" if name.contains("switch_mlp") => experts(name),
        _ => vec![(name.to_string(), a.clone())],
    }
}

#[test]
fn hugging_face_layouts_of_gpt2_and_mixtures_of_experts_load_alike() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    for case in ["gpt2", "mixtral", "qwen3_moe"] {
        let dir = fixtures().join(case);
        let tmp = tempfile::tempdir().unwrap();
        let arrays = Array::load_safetensors(dir.join("model.safetensors")).unwrap();
        let mut hf: Vec<(String, Array)> = arrays
            .iter()
            .flat_map(|(n, a)| hugging_face_layout(case, n, a))
            .collect();
        if case == "gpt2" {
            // The causal-mask buffer Hugging Face's GPT-2 checkpoints carry.
            hf.push((
                "h.0.attn.bias".into(),
                Array::ones::<f32>(&[1, 1, 4, 4]).unwrap(),
            ));
        }
        assert!(hf
            .iter()
            .all(|(n, _)| !n.contains("switch_mlp") && !n.contains(".h.")));
        let refs: Vec<(&str, &Array)> = hf.iter().map(|(n, a)| (n.as_str(), a)).collect();
        Array::save_safetensors(refs, None, tmp.path().join("model.safetensors")).unwrap();
        std::fs::copy(dir.join("config.json"), tmp.path().join("config.json")).unwrap();
        let r = reference(&dir);
        let model = folder::read(tmp.path())
            .and_then(|c| c.build(stored(&r)))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        compare(&format!("{case} (Hugging Face layout)"), &model, &r, 1e-4);
    }
}
