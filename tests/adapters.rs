//! Adapters across tools and forms, on the parity fixtures (tiny models mlx-lm built): an
//! adapter we trained gives the same logits in mlx-lm as in Adapt, an adapter mlx-lm made
//! gives the same logits in Adapt as in mlx-lm (LoRA and DoRA, dense and 4-bit bases, GPT-2's
//! own module names), and a fused model folder computes what the base with its adapter
//! computes. On mixture-of-experts models adapters train the attention projections: keys and
//! adapter files that name experts are refused, saying so. The mlx-lm halves
//! need the reference environment (`ADAPT_REFERENCE_PYTHON`, set by `scripts/test.sh` for
//! slow tests).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use adapt_data::cache::CacheWriter;
use adapt_data::render::Tokenized;
use adapt_data::TokenCache;
use adapt_engine::adapters::{self, fuse_folder};
use adapt_engine::load::folder;
use adapt_engine::mlx_rs::Array;
use adapt_engine::mlx_rs::Dtype;
use adapt_engine::testing::max_abs_diff;
use adapt_engine::train::{train, FineTuneType, Hooks, RunFiles, TrainConfig, TrainData};
use adapt_engine::{Model, WeightFormat};

static MLX: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MLX.lock().unwrap_or_else(|e| e.into_inner())
}

fn fixture(name: &str) -> PathBuf {
    adapt_testsupport::repo_root()
        .join("tests/fixtures/parity")
        .join(name)
}

const IDS: [i32; 10] = [1, 17, 42, 99, 3, 120, 7, 7, 64, 11];

fn ids_arg() -> String {
    IDS.map(|i| i.to_string()).join(",")
}

/// The fixture folder's model, f32 and quantized as stored.
fn model(dir: &Path) -> Model {
    let format = WeightFormat {
        dtype: Dtype::Float32,
        dequantize: false,
    };
    folder::read(dir).unwrap().build(format).unwrap()
}

fn logits(model: &Model) -> Array {
    let x = Array::from_slice(&IDS, &[1, IDS.len() as i32]);
    model.forward(&x, &mut model.new_cache()).unwrap()
}

fn python() -> Option<String> {
    adapt_testsupport::reference_python("the mlx-lm half of the adapter cross-checks")
}

/// Runs `adapter_logits.py args…` and returns its standard output.
fn reference(python: &str, args: &[&std::ffi::OsStr]) -> Vec<u8> {
    adapt_testsupport::run_reference(python, "adapter_logits.py", args)
}

fn mlx_lm_logits(python: &str, model: &Path, adapter: &Path) -> Array {
    let ids = ids_arg();
    let stdout = reference(
        python,
        &[
            "logits".as_ref(),
            model.as_ref(),
            adapter.as_ref(),
            ids.as_ref(),
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let rows = json["logits"].as_array().unwrap();
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let vocab = flat.len() / rows.len();
    Array::from_slice(&flat, &[1, rows.len() as i32, vocab as i32])
}

/// A few steps of real training on generated data, so `lora_b` is not zero.
fn train_briefly(lm: &mut Model, dir: &Path, kind: FineTuneType) -> PathBuf {
    let path = dir.join("train.bin");
    let mut w = CacheWriter::create(&path).unwrap();
    for i in 0..8u32 {
        let tokens: Vec<u32> = (0..16).map(|j| 5 + (i + j) % 9).collect();
        let mask = (0..16).map(|j| j > 0).collect();
        w.push(u64::from(i) + 1, &Tokenized { tokens, mask })
            .unwrap();
    }
    w.finish().unwrap();
    let cache = TokenCache::open(&path).unwrap();
    let mut config = TrainConfig {
        iters: Some(4),
        learning_rate: 1e-2,
        batch_size: 2,
        fine_tune_type: kind,
        ..TrainConfig::default()
    };
    config.lora_parameters.rank = 4;
    let files = RunFiles {
        dir: dir.join("adapter"),
    };
    let hooks = Hooks {
        prober: None,
        on_event: &mut |_| {},
        cancel: &|| false,
    };
    let data = TrainData {
        train: &cache,
        valid: None,
        pad_id: 0,
    };
    train(lm, &data, &config, &files, false, hooks).unwrap();
    files.dir
}

#[test]
fn our_adapters_in_mlx_lm_and_fused() {
    let _mlx = lock();
    let python = python();
    for (name, kind) in [
        ("llama", FineTuneType::Lora),
        ("llama_q4_g64", FineTuneType::Lora),
        ("qwen3", FineTuneType::Dora),
        ("llama_q4_g64", FineTuneType::Dora),
        ("gpt2", FineTuneType::Lora),
        ("mixtral", FineTuneType::Lora),
        ("qwen3_moe_q4", FineTuneType::Dora),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fixture(name);
        let mut lm = model(&dir);
        let base = logits(&lm);
        let adapter = train_briefly(&mut lm, tmp.path(), kind);
        let ours = logits(&lm);
        assert!(
            max_abs_diff(&base, &ours) > 1e-3,
            "{name}: training changed nothing"
        );

        let fused = tmp.path().join("fused");
        fuse_folder(&dir, &adapter, &fused, true, &mut |_| {}).unwrap();
        let f = model(&fused);
        let d = max_abs_diff(&ours, &logits(&f));
        assert!(d < 1e-3, "{name} {kind:?}: fused (dense) differs by {d}");

        if let Some(py) = &python {
            let theirs = mlx_lm_logits(py, &dir, &adapter);
            let d = max_abs_diff(&ours, &theirs);
            assert!(d < 1e-4, "{name} {kind:?}: mlx-lm differs by {d}");
        }
    }
}

#[test]
fn mlx_lm_adapters_in_adapt() {
    let Some(py) = python() else {
        return;
    };
    let _mlx = lock();
    for (name, kind) in [
        ("llama", "lora"),
        ("llama_q4_g64", "dora"),
        ("qwen2", "lora"),
        ("phi3", "lora"),
        ("gpt2", "dora"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fixture(name);
        let adapter = tmp.path().join("mlx-lm-adapter");
        let args = [
            "make".as_ref(),
            dir.as_ref(),
            adapter.as_ref(),
            kind.as_ref(),
        ];
        let shape = ["16", "4", "3"].map(std::ffi::OsStr::new);
        reference(&py, &[&args[..], &shape[..]].concat());
        let theirs = mlx_lm_logits(&py, &dir, &adapter);
        let mut lm = model(&dir);
        let base = logits(&lm);
        adapters::load(&mut lm, &adapter).unwrap();
        let ours = logits(&lm);
        assert!(
            max_abs_diff(&base, &ours) > 1e-3,
            "{name}: the adapter changed nothing"
        );
        let d = max_abs_diff(&ours, &theirs);
        assert!(d < 1e-4, "{name} {kind}: Adapt differs from mlx-lm by {d}");
    }
}

#[test]
fn mixture_of_experts_models_adapt_their_attention() {
    let _mlx = lock();
    let mut lm = model(&fixture("qwen3_moe"));
    let config = |keys: Option<&[&str]>| adapters::AdapterConfig {
        num_layers: -1,
        lora_parameters: adapters::LoraParameters {
            keys: keys.map(|k| k.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        },
        ..Default::default()
    };
    adapters::attach(&mut lm, &config(None), 0).unwrap();
    let names: Vec<String> = adapters::adapter_weights(&lm)
        .unwrap()
        .into_keys()
        .filter(|n| n.ends_with(".lora_a"))
        .collect();
    // Four attention projections in each of the three blocks, and the dense MLP of block 1.
    assert_eq!(names.len(), 3 * 4 + 3, "{names:?}");
    assert!(names
        .iter()
        .all(|n| n.contains(".self_attn.") || n.contains("layers.1.mlp.")));
    for keys in [
        &["mlp.switch_mlp.up_proj"][..],
        &["gate"],
        &["self_attn.q_proj", "down_proj"],
    ] {
        adapters::remove(&mut lm);
        let err = adapters::attach(&mut lm, &config(Some(keys)), 0).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("mixture-of-experts"),
            "{keys:?}: {message}"
        );
        assert!(
            message.contains("attention projections"),
            "{keys:?}: {message}"
        );
    }
}

#[test]
fn mlx_lm_adapters_on_experts_are_refused_saying_why() {
    let Some(py) = python() else {
        return;
    };
    let _mlx = lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("mixtral");
    let adapter = tmp.path().join("mlx-lm-adapter");
    let args = ["make", "", "", "lora", "2", "4", "3"].map(std::ffi::OsStr::new);
    let mut args = args.to_vec();
    args[1] = dir.as_ref();
    args[2] = adapter.as_ref();
    reference(&py, &args);
    let mut lm = model(&dir);
    let err = adapters::load(&mut lm, &adapter).unwrap_err().to_string();
    assert!(err.contains("mixture-of-experts"), "{err}");
}
