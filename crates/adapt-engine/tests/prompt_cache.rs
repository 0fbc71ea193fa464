//! Prompt caches on disk: saved and loaded, a cache continues exactly as the one in memory;
//! bad files are clear errors.

use std::collections::HashMap;
use std::sync::Mutex;

use adapt_engine::mlx_rs::Array;
use adapt_engine::prompt_cache::{load, save};
use adapt_engine::testing::{max_abs_diff, random_model, tiny_llama_args, F32};
use adapt_engine::SequenceCache;

/// MLX is used from one thread at a time.
static MLX: Mutex<()> = Mutex::new(());

#[test]
fn a_saved_cache_continues_exactly_like_the_one_in_memory() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let model = random_model(&tiny_llama_args(), 3, None, F32).unwrap();
    let tokens: Vec<u32> = vec![5, 17, 42, 99, 3, 250, 7, 7, 128, 64];
    let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
    let mut cache = SequenceCache::new(&model);
    model
        .forward(&Array::from_slice(&ids, &[1, 10]), &mut cache.layers)
        .unwrap();
    cache.tokens = tokens.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.safetensors");
    let meta = HashMap::from([("model".to_string(), "tiny".to_string())]);
    let bytes = save(&path, &cache, &meta).unwrap();
    assert!(bytes > 0);

    let (mut restored, metadata) = load(&path).unwrap();
    assert_eq!(restored.tokens, tokens);
    assert_eq!(metadata.get("model").map(String::as_str), Some("tiny"));
    assert!(restored.layers.iter().all(|l| l.offset() == 10));
    let next = Array::from_slice(&[11i32], &[1, 1]);
    let a = model.forward_last(&next, &mut cache.layers).unwrap();
    let b = model.forward_last(&next, &mut restored.layers).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn a_file_that_is_not_a_prompt_cache_is_a_clear_error() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.safetensors");
    std::fs::write(&path, b"not a cache").unwrap();
    let err = load(&path).expect_err("junk must not load");
    assert_eq!(err.code(), "model.invalid");
    assert!(err.to_string().contains("junk.safetensors"), "{err}");
}

/// A layer's offset that is not one number (found by fuzzing: it panicked in MLX's `item`).
#[test]
fn an_offset_that_is_not_one_number_is_a_clear_error() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.safetensors");
    let kv = Array::from_slice(&[0.5f32, 1.0, 1.5, 2.0], &[1, 1, 2, 2]);
    let offset = Array::from_slice(&[1i32, 2, 3, 4], &[4]);
    let arrays = [("0.0", &kv), ("0.1", &kv), ("0.2", &offset)];
    let meta = HashMap::from([("1.0".to_string(), "KVCache".to_string())]);
    Array::save_safetensors(arrays, &meta, &path).unwrap();
    let err = load(&path).expect_err("a four-number offset must not load");
    assert_eq!(err.code(), "model.invalid");
    assert!(
        err.to_string()
            .contains("'0.2' should hold one number, not 4"),
        "{err}"
    );
}

/// A cache mlx-lm saved (no token ids of ours in it) continues in Adapt with mlx-lm's next
/// logits. Needs the reference environment (`ADAPT_REFERENCE_PYTHON`).
#[test]
fn a_cache_mlx_lm_saved_continues_in_adapt() {
    let Some(python) =
        adapt_testsupport::reference_python("a_cache_mlx_lm_saved_continues_in_adapt")
    else {
        return;
    };
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let root = adapt_testsupport::repo_root();
    for name in ["llama", "qwen3"] {
        let dir = root.join("tests/fixtures/parity").join(name);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("mlx-lm.safetensors");
        let theirs = reference_logits(
            &python,
            &[
                dir.as_os_str(),
                path.as_os_str(),
                "1,17,42,99,3,120,7,7".as_ref(),
                "11".as_ref(),
            ],
        );
        let model = fixture_model(&dir);
        let (mut cache, _) = load(&path).unwrap();
        assert!(cache.tokens.is_empty(), "mlx-lm writes no token ids");
        assert!(cache.layers.iter().all(|l| l.offset() == 8));
        let next = Array::from_slice(&[11i32], &[1, 1]);
        let ours = model.forward_last(&next, &mut cache.layers).unwrap();
        let d = max_abs_diff(&ours, &theirs);
        assert!(
            d < 1e-4,
            "{name}: Adapt's continuation differs from mlx-lm's by {d}"
        );
    }
}

/// A cache Adapt saved loads in mlx-lm (`load_prompt_cache`) and continues with Adapt's next
/// logits. Needs the reference environment (`ADAPT_REFERENCE_PYTHON`).
#[test]
fn a_cache_adapt_saved_continues_in_mlx_lm() {
    let Some(python) =
        adapt_testsupport::reference_python("a_cache_adapt_saved_continues_in_mlx_lm")
    else {
        return;
    };
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let root = adapt_testsupport::repo_root();
    for name in ["llama", "qwen3"] {
        let dir = root.join("tests/fixtures/parity").join(name);
        let model = fixture_model(&dir);
        let tokens: Vec<u32> = vec![1, 17, 42, 99, 3, 120, 7, 7, 64];
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let mut cache = SequenceCache::new(&model);
        model
            .forward(&Array::from_slice(&ids, &[1, 9]), &mut cache.layers)
            .unwrap();
        cache.tokens = tokens;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("adapt.safetensors");
        save(&path, &cache, &HashMap::new()).unwrap();
        let ours = model
            .forward_last(&Array::from_slice(&[11i32], &[1, 1]), &mut cache.layers)
            .unwrap();

        let theirs = reference_logits(
            &python,
            &[
                "--continue".as_ref(),
                dir.as_os_str(),
                path.as_os_str(),
                "11".as_ref(),
            ],
        );
        let d = max_abs_diff(&ours, &theirs);
        assert!(d < 1e-4, "{name}: mlx-lm's continuation differs by {d}");
    }
}

/// A parity fixture's model, dense f32.
fn fixture_model(dir: &std::path::Path) -> adapt_engine::Model {
    let format = adapt_engine::WeightFormat {
        dtype: adapt_engine::mlx_rs::Dtype::Float32,
        dequantize: false,
    };
    adapt_engine::load::folder::read(dir)
        .unwrap()
        .build(format)
        .unwrap()
}

/// Runs `save_cache.py args…` in the reference environment and returns the logits it prints
/// (`[1, vocab]`).
fn reference_logits(python: &str, args: &[&std::ffi::OsStr]) -> Array {
    let stdout = adapt_testsupport::run_reference(python, "save_cache.py", args);
    let json: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let logits: Vec<f32> = json["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    Array::from_slice(&logits, &[1, logits.len() as i32])
}
