//! Training on tiny random models and tiny generated data: the loss falls (LoRA, DoRA, QLoRA),
//! a resumed run takes exactly the steps an uninterrupted one takes, adapters round-trip
//! through files (also onto a model whose query/key rows are in GGUF's order), fusing keeps
//! the logits, and memory that cannot fit is refused with a reason.

use std::path::Path;
use std::sync::Mutex;

use adapt_data::cache::CacheWriter;
use adapt_data::render::Tokenized;
use adapt_data::TokenCache;
use adapt_engine::adapters;
use adapt_engine::mlx_rs::Array;
use adapt_engine::models::{QuantConfig, Weights};
use adapt_engine::testing::{max_abs_diff, random_model, random_weights, tiny_llama_args, F32};
use adapt_engine::train::{
    memory, train, FineTuneType, Hooks, RunFiles, TrainConfig, TrainData, TrainEvent, TrainStop,
};
use adapt_engine::Model;

static MLX: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MLX.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` sequences cycling through eight tokens from different starts: easy to learn.
fn counting_data(dir: &Path, name: &str, n: usize, seed: u32) -> TokenCache {
    let path = dir.join(name);
    let mut w = CacheWriter::create(&path).unwrap();
    for i in 0..n {
        let len = 12 + (i % 5) * 3;
        let start = i as u32 * 3 + seed;
        let tokens: Vec<u32> = (0..len as u32).map(|j| 10 + (start + j) % 8).collect();
        let mask = (0..len).map(|j| j > 0).collect();
        w.push(i as u64 + 1, &Tokenized { tokens, mask }).unwrap();
    }
    w.finish().unwrap();
    TokenCache::open(&path).unwrap()
}

fn config(iters: u64) -> TrainConfig {
    let mut c = TrainConfig {
        iters: Some(iters),
        learning_rate: 2e-3,
        batch_size: 4,
        steps_per_report: 5,
        steps_per_eval: 10,
        save_every: 5,
        seed: 7,
        ..TrainConfig::default()
    };
    c.lora_parameters.rank = 4;
    c
}

fn ids(tokens: &[i32]) -> Array {
    Array::from_slice(tokens, &[1, tokens.len() as i32])
}

const PROBE: [i32; 8] = [10, 13, 16, 19, 22, 25, 28, 31];

fn logits(model: &Model) -> Array {
    model.forward(&ids(&PROBE), &mut model.new_cache()).unwrap()
}

struct Run {
    losses: Vec<f64>,
    stop: TrainStop,
    events: Vec<TrainEvent>,
}

fn run(
    model: &mut Model,
    dir: &Path,
    config: &TrainConfig,
    resume: bool,
    stop_after: Option<usize>,
) -> Run {
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let train_split = counting_data(&data_dir, "train.bin", 32, 1);
    let valid_split = counting_data(&data_dir, "valid.bin", 8, 100);
    let data = TrainData {
        train: &train_split,
        valid: Some(&valid_split),
        pad_id: 0,
    };
    let files = RunFiles {
        dir: dir.join("run"),
    };
    let mut events = Vec::new();
    let steps = std::cell::Cell::new(0usize);
    let hooks = Hooks {
        prober: None,
        on_event: &mut |e| events.push(e.clone()),
        cancel: &|| {
            steps.set(steps.get() + 1);
            stop_after.is_some_and(|n| steps.get() > n)
        },
    };
    let outcome = train(model, &data, config, &files, resume, hooks).unwrap();
    Run {
        losses: outcome.losses,
        stop: outcome.stop,
        events,
    }
}

#[test]
fn lora_dora_and_qlora_losses_fall() {
    let _mlx = lock();
    for (quantize, kind) in [
        (None, FineTuneType::Lora),
        (None, FineTuneType::Dora),
        (Some(4), FineTuneType::Lora),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut model = random_model(&tiny_llama_args(), 3, quantize, F32).unwrap();
        let mut c = config(40);
        c.fine_tune_type = kind;
        let r = run(&mut model, dir.path(), &c, false, None);
        assert_eq!(r.stop, TrainStop::Finished);
        let first: f64 = r.losses[..5].iter().sum::<f64>() / 5.0;
        let last: f64 = r.losses[35..].iter().sum::<f64>() / 5.0;
        assert!(
            last < first * 0.7,
            "{quantize:?} {kind:?}: loss {first:.3} → {last:.3}"
        );
        let evals: Vec<f64> = r
            .events
            .iter()
            .filter_map(|e| match e {
                TrainEvent::Evaluated { val_loss, .. } => Some(*val_loss),
                _ => None,
            })
            .collect();
        assert_eq!(evals.len(), 4, "{quantize:?} {kind:?}");
        let best = evals.iter().copied().fold(f64::MAX, f64::min);
        assert!(best < r.losses[0] / 2.0, "{evals:?}");
        let reports = r
            .events
            .iter()
            .filter(|e| matches!(e, TrainEvent::Report(_)))
            .count();
        assert_eq!(reports, 8);
        // The run's adapter folder is mlx-lm's layout.
        let run = dir.path().join("run");
        assert!(run.join("adapters.safetensors").exists());
        let cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run.join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["lora_parameters"]["rank"], 4);
        assert_eq!(cfg["num_layers"], 16);
    }
}

#[test]
fn resumed_run_takes_the_same_steps() {
    let _mlx = lock();
    let c = config(20);
    let straight_dir = tempfile::tempdir().unwrap();
    let mut model = random_model(&tiny_llama_args(), 4, Some(4), F32).unwrap();
    let straight = run(&mut model, straight_dir.path(), &c, false, None);
    let straight_logits = logits(&model);

    let dir = tempfile::tempdir().unwrap();
    let mut model = random_model(&tiny_llama_args(), 4, Some(4), F32).unwrap();
    let first = run(&mut model, dir.path(), &c, false, Some(10));
    assert_eq!(first.stop, TrainStop::Cancelled);
    assert_eq!(first.losses.len(), 10);
    // A fresh process: the model as loaded, then resume from the checkpoint.
    let mut model = random_model(&tiny_llama_args(), 4, Some(4), F32).unwrap();
    let second = run(&mut model, dir.path(), &c, true, None);
    assert_eq!(second.stop, TrainStop::Finished);
    let resumed: Vec<f64> = first.losses.iter().chain(&second.losses).copied().collect();
    assert_eq!(resumed.len(), 20);
    for (i, (a, b)) in straight.losses.iter().zip(&resumed).enumerate() {
        assert!((a - b).abs() < 1e-5, "step {}: {a} vs {b}", i + 1);
    }
    assert!(max_abs_diff(&straight_logits, &logits(&model)) < 1e-4);
}

#[test]
fn early_stopping_and_keep_best() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let mut model = random_model(&tiny_llama_args(), 5, None, F32).unwrap();
    // A learning rate this high diverges after the first evaluations.
    let mut c = config(200);
    c.learning_rate = 0.3;
    c.steps_per_eval = 2;
    c.early_stopping_patience = Some(2);
    c.max_grad_norm = Some(1.0);
    let r = run(&mut model, dir.path(), &c, false, None);
    assert_eq!(r.stop, TrainStop::EarlyStopped, "{:?}", r.losses.len());
    let evals: Vec<(f64, bool)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Evaluated {
                val_loss, improved, ..
            } => Some((*val_loss, *improved)),
            _ => None,
        })
        .collect();
    assert!(evals.len() >= 3);
    assert!(!evals[evals.len() - 1].1 && !evals[evals.len() - 2].1);
    // The run's adapter is the best one, not the last.
    let run_dir = dir.path().join("run");
    let best = std::fs::read(run_dir.join("best_adapters.safetensors")).unwrap();
    assert_eq!(
        std::fs::read(run_dir.join("adapters.safetensors")).unwrap(),
        best
    );
}

#[test]
fn adapters_round_trip_fuse_and_reorder_for_gguf_rows() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let mut model = random_model(&tiny_llama_args(), 6, None, F32).unwrap();
    let base = logits(&model);
    let mut c = config(15);
    c.fine_tune_type = FineTuneType::Dora;
    run(&mut model, dir.path(), &c, false, None);
    let tuned = logits(&model);
    assert!(
        max_abs_diff(&base, &tuned) > 1e-2,
        "training changed nothing"
    );
    let run_dir = dir.path().join("run");

    // Load the saved adapter onto a fresh copy of the base: same logits.
    let mut fresh = random_model(&tiny_llama_args(), 6, None, F32).unwrap();
    adapters::load(&mut fresh, &run_dir).unwrap();
    assert!(max_abs_diff(&tuned, &logits(&fresh)) < 1e-5);

    // Fused into the weights: same logits, no adapters left.
    adapters::fuse(&mut fresh, false).unwrap();
    assert!(max_abs_diff(&tuned, &logits(&fresh)) < 1e-4);
    assert_eq!(adapters::remove(&mut fresh), 0);

    // The same base with GGUF's query/key row order (and interleaved RoPE): the adapter file
    // (Hugging Face order) applies to it and gives the same logits.
    let mut args = tiny_llama_args();
    args.rope_traditional = true;
    args.qk_permuted = true;
    let mut arrays = random_weights(&tiny_llama_args(), 6, None).unwrap();
    for l in 0..args.num_hidden_layers {
        for (proj, heads) in [
            ("q_proj", args.num_attention_heads),
            ("k_proj", args.num_key_value_heads),
        ] {
            let name = format!("model.layers.{l}.self_attn.{proj}.weight");
            let w = arrays.remove(&name).unwrap();
            let shape = w.shape().to_vec();
            let half = shape[0] / heads / 2;
            let p = w
                .reshape(&[heads, 2, half, shape[1]])
                .unwrap()
                .swap_axes(1, 2)
                .unwrap()
                .reshape(&shape)
                .unwrap();
            arrays.insert(name, p);
        }
    }
    let mut weights = Weights::new(
        Path::new("<gguf-order>"),
        arrays,
        QuantConfig::default(),
        F32,
    );
    let mut gguf = Model::new(args, &mut weights).unwrap();
    assert!(max_abs_diff(&base, &logits(&gguf)) < 1e-4);
    adapters::load(&mut gguf, &run_dir).unwrap();
    assert!(max_abs_diff(&tuned, &logits(&gguf)) < 1e-4);
}

#[test]
fn bad_adapter_files_are_named() {
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let mut model = random_model(&tiny_llama_args(), 7, None, F32).unwrap();
    run(&mut model, dir.path(), &config(5), false, None);
    let run_dir = dir.path().join("run");
    // Rank 4 weights under a rank-8 configuration.
    let cfg = run_dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"rank\": 4", "\"rank\": 8");
    std::fs::write(&cfg, text).unwrap();
    let mut fresh = random_model(&tiny_llama_args(), 7, None, F32).unwrap();
    let e = adapters::load(&mut fresh, &run_dir)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adapters.safetensors") && e.contains("shape"),
        "{e}"
    );
}

#[test]
fn gradient_checkpointing_takes_the_same_steps() {
    let _mlx = lock();
    let mut losses = Vec::new();
    for checkpointing in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut model = random_model(&tiny_llama_args(), 8, Some(4), F32).unwrap();
        let mut c = config(8);
        c.fine_tune_type = FineTuneType::Dora;
        c.grad_checkpoint = checkpointing;
        losses.push(run(&mut model, dir.path(), &c, false, None).losses);
        assert!(!model.net().grad_checkpoint);
    }
    for (i, (a, b)) in losses[0].iter().zip(&losses[1]).enumerate() {
        assert!((a - b).abs() < 1e-5, "step {}: {a} vs {b}", i + 1);
    }
}

#[test]
fn the_batch_size_is_lowered_to_fit_or_the_run_is_refused() {
    let _mlx = lock();
    let model = random_model(&tiny_llama_args(), 9, None, F32).unwrap();
    let mut c = config(1);
    c.batch_size = 8;
    let full = memory::estimate(&model, &c, 1000, 8, 64, u64::MAX);
    let two = memory::estimate(&model, &c, 1000, 2, 64, u64::MAX);
    assert!(two.total < full.total);
    // A budget that holds two rows but not eight: 8 → 4 → 2.
    let fitted = memory::fit_batch(&model, &c, 1000, 64, two.total).unwrap();
    assert_eq!(fitted.batch_size, 2);
    let refused = memory::fit_batch(&model, &c, 1000, 64, 1).unwrap_err();
    assert_eq!(refused.batch_size, 1);
    // Checkpointing needs less for the same batch.
    c.grad_checkpoint = true;
    assert!(memory::estimate(&model, &c, 1000, 8, 64, u64::MAX).activations < full.activations);
}

/// Mixed precision: a base held and computed in bf16 (dense with LoRA and DoRA, quantized for
/// QLoRA) or f16 trains like the f32 base step by step, while the adapters, their optimizer
/// state and the saved adapter stay f32; a model held in another type than the run's
/// precision is refused.
#[test]
fn half_precision_tracks_f32_and_keeps_adapters_and_optimizer_f32() {
    use adapt_engine::mlx_rs::module::ModuleParameters;
    use adapt_engine::mlx_rs::Dtype;
    use adapt_engine::models::WeightFormat;
    use adapt_engine::train::Precision;
    let _mlx = lock();
    // Relative difference of each step's loss from the f32 run's, over 12 steps.
    const TOLERANCE: f64 = 0.03;
    for (quantize, precision, kind) in [
        (None, Precision::Bf16, FineTuneType::Lora),
        (None, Precision::F16, FineTuneType::Lora),
        (None, Precision::Bf16, FineTuneType::Dora),
        (Some(4), Precision::Bf16, FineTuneType::Lora),
    ] {
        // A learning rate at which the path is smooth: at 2e-3 the tiny model's loss jumps
        // between batches and any rounding sends two runs different ways after a few steps.
        let mut c = config(12);
        c.learning_rate = 5e-4;
        c.fine_tune_type = kind;
        c.precision = Precision::F32;
        let dir = tempfile::tempdir().unwrap();
        let mut model = random_model(&tiny_llama_args(), 5, quantize, F32).unwrap();
        let reference = run(&mut model, dir.path(), &c, false, None);

        c.precision = precision;
        let dtype = precision.dtype().unwrap();
        let format = WeightFormat {
            dtype,
            dequantize: false,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut model = random_model(&tiny_llama_args(), 5, quantize, format).unwrap();
        let half = run(&mut model, dir.path(), &c, false, None);
        assert_eq!(half.losses.len(), 12);
        println!(
            "{quantize:?} {precision:?} {kind:?}: f32 {:.4?}\n  half {:.4?}",
            reference.losses, half.losses
        );
        for (i, (a, b)) in reference.losses.iter().zip(&half.losses).enumerate() {
            let off = (a - b).abs() / a;
            assert!(
                off < TOLERANCE,
                "{quantize:?} {precision:?} {kind:?} step {}: f32 {a:.5}, half {b:.5} ({:.2} %)",
                i + 1,
                off * 100.0
            );
        }
        assert!(half.losses[11] < half.losses[0], "{:?}", half.losses);
        // The base stayed in the half type; every adapter weight is f32.
        assert_eq!(model.net().model.norm.weight.dtype(), dtype);
        let trainable = model.net().trainable_parameters().flatten();
        assert!(!trainable.is_empty());
        for (name, a) in &trainable {
            assert_eq!(a.dtype(), Dtype::Float32, "{name}");
        }
        // The saved adapter and the optimizer state of the last checkpoint are f32.
        let saved = Array::load_safetensors(dir.path().join("run/adapters.safetensors")).unwrap();
        assert!(!saved.is_empty());
        assert!(saved.values().all(|a| a.dtype() == Dtype::Float32));
        let checkpoints = dir.path().join("run/checkpoints");
        let last = std::fs::read_dir(&checkpoints)
            .unwrap()
            .map(|e| e.unwrap().path())
            .max()
            .unwrap();
        let state = Array::load_safetensors(last.join("optimizer.safetensors")).unwrap();
        assert!(!state.is_empty(), "{}", last.display());
        for (name, a) in &state {
            if a.ndim() > 0 {
                assert_eq!(a.dtype(), Dtype::Float32, "{name}");
            }
        }
    }
    // A model held in f32 cannot train in bf16: it would silently compute in f32.
    let dir = tempfile::tempdir().unwrap();
    let mut model = random_model(&tiny_llama_args(), 5, None, F32).unwrap();
    let mut c = config(2);
    c.precision = Precision::Bf16;
    let train_split = counting_data(dir.path(), "t.bin", 8, 1);
    let data = TrainData {
        train: &train_split,
        valid: None,
        pad_id: 0,
    };
    let files = RunFiles {
        dir: dir.path().join("run"),
    };
    let hooks = Hooks {
        prober: None,
        on_event: &mut |_| {},
        cancel: &|| false,
    };
    let e = train(&mut model, &data, &c, &files, false, hooks).unwrap_err();
    assert!(e.to_string().contains("precision bf16"), "{e}");
}
