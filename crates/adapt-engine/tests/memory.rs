//! The memory estimate of a training step against the peak MLX measures over the first three
//! steps, on random Llama models of two shapes, and what gradient checkpointing saves. The
//! bounds are those kept on MLX's CPU backend (where CI runs): within 10 % for dense and
//! quantized models; with checkpointing on a quantized model (QLoRA) the estimate is
//! conservative, never more than 5 % under the peak and at most about 1.8× over it.

use std::path::Path;
use std::sync::Mutex;

use adapt_data::cache::CacheWriter;
use adapt_data::render::Tokenized;
use adapt_data::TokenCache;
use adapt_engine::models::ModelArgs;
use adapt_engine::testing::{random_model, tiny_llama_args, F32};
use adapt_engine::train::{
    train, Hooks, MemoryEstimate, RunFiles, TrainConfig, TrainData, TrainEvent,
};

/// MLX's peak memory is the process's: one measurement at a time.
static MLX: Mutex<()> = Mutex::new(());

/// `n` rows of `len` tokens each (so every batch is `len` wide), the first quarter masked.
fn rows(dir: &Path, n: usize, len: usize, vocab: u32) -> TokenCache {
    let path = dir.join("train.bin");
    let mut w = CacheWriter::create(&path).unwrap();
    for i in 0..n {
        let tokens = (0..len as u32)
            .map(|j| 3 + (i as u32 * 7 + j * 13) % (vocab - 3))
            .collect();
        let mask = (0..len).map(|j| j > len / 4).collect();
        w.push(i as u64 + 1, &Tokenized { tokens, mask }).unwrap();
    }
    w.finish().unwrap();
    TokenCache::open(&path).unwrap()
}

fn shape(hidden: i32, inter: i32, layers: i32, heads: i32, kv: i32, vocab: i32) -> ModelArgs {
    ModelArgs {
        hidden_size: hidden,
        intermediate_size: inter,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: kv,
        head_dim: hidden / heads,
        rope_dims: hidden / heads,
        vocab_size: vocab,
        max_position_embeddings: 4096,
        ..tiny_llama_args()
    }
}

/// A 4-block model with a small vocabulary, trained on 4 rows of 128 tokens.
fn narrow() -> ModelArgs {
    shape(256, 768, 4, 8, 2, 4096)
}

/// A 6-block model shaped like SmolLM2's blocks (hidden 576, MLP 1536, 9 / 3 heads).
fn smollm_like() -> ModelArgs {
    shape(576, 1536, 6, 9, 3, 8192)
}

struct Run {
    quantize: Option<i32>,
    batch: usize,
    len: usize,
    num_layers: i32,
    checkpoint: bool,
}

/// The estimate a run started with and the peak measured over its first three steps.
fn measure(args: &ModelArgs, run: &Run) -> (MemoryEstimate, u64) {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut model = random_model(args, 1, run.quantize, F32).unwrap();
    let train_split = rows(dir.path(), run.batch * 4, run.len, args.vocab_size as u32);
    let data = TrainData {
        train: &train_split,
        valid: None,
        pad_id: 0,
    };
    let config = TrainConfig {
        iters: Some(3),
        batch_size: run.batch,
        num_layers: run.num_layers,
        grad_checkpoint: run.checkpoint,
        max_seq_length: 4096,
        save_every: 1000,
        ..TrainConfig::default()
    };
    let (mut estimate, mut measured) = (None, 0);
    let hooks = Hooks {
        prober: None,
        on_event: &mut |e| match e {
            TrainEvent::Started { memory, .. } => estimate = Some(memory.clone()),
            TrainEvent::Calibrated { measured: m, .. } => measured = *m,
            _ => {}
        },
        cancel: &|| false,
    };
    let files = RunFiles {
        dir: dir.path().join("run"),
    };
    train(&mut model, &data, &config, &files, false, hooks).unwrap();
    let estimate = estimate.unwrap();
    assert_eq!(estimate.batch_size, run.batch, "the batch fits");
    (estimate, measured)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

#[test]
fn the_estimate_is_within_ten_percent_of_the_measured_peak() {
    let runs = [
        // Dense, every block adapted, without and with checkpointing.
        (narrow(), None, 4, 128, -1, false),
        (narrow(), None, 4, 128, -1, true),
        // Dense, the last 4 of 6 blocks adapted.
        (smollm_like(), None, 4, 128, 4, false),
        (smollm_like(), None, 4, 128, 4, true),
        // Quantized (QLoRA) without checkpointing.
        (narrow(), Some(4), 4, 128, -1, false),
    ];
    for (args, quantize, batch, len, num_layers, checkpoint) in runs {
        let run = Run {
            quantize,
            batch,
            len,
            num_layers,
            checkpoint,
        };
        let (e, measured) = measure(&args, &run);
        let ratio = measured as f64 / e.total as f64;
        eprintln!(
            "hidden {} layers {num_layers}/{} q {quantize:?} checkpoint {checkpoint}: estimated \
             {:.1} MB, measured {:.1} MB ({ratio:.3})",
            args.hidden_size,
            args.num_hidden_layers,
            mb(e.total),
            mb(measured)
        );
        assert!(
            (0.9..=1.1).contains(&ratio),
            "measured {:.1} MB against {:.1} MB estimated: {e:?}",
            mb(measured),
            mb(e.total)
        );
    }
}

#[test]
fn with_checkpointing_a_quantized_model_s_estimate_is_conservative() {
    let run = Run {
        quantize: Some(4),
        batch: 4,
        len: 128,
        num_layers: -1,
        checkpoint: true,
    };
    let (e, measured) = measure(&narrow(), &run);
    let ratio = measured as f64 / e.total as f64;
    eprintln!(
        "estimated {:.1} MB, measured {:.1} MB ({ratio:.3})",
        mb(e.total),
        mb(measured)
    );
    assert!((0.55..=1.05).contains(&ratio), "{ratio}: {e:?}");
}

/// The claim README makes: on a model of SmolLM2's block shape training on 4 rows of 256
/// tokens, checkpointing takes the peak of a step under 60 % of what it is without when the
/// model is dense (measured: 49 %) and under 40 % when it is quantized (measured: 34 %).
#[test]
fn gradient_checkpointing_cuts_the_peak_by_at_least_forty_percent() {
    for (quantize, bound) in [(None, 0.6), (Some(4), 0.4)] {
        let peak = |checkpoint| {
            let run = Run {
                quantize,
                batch: 4,
                len: 256,
                num_layers: -1,
                checkpoint,
            };
            measure(&smollm_like(), &run).1
        };
        let (without, with) = (peak(false), peak(true));
        eprintln!(
            "q {quantize:?}: peak {:.1} MB without checkpointing, {:.1} MB with ({:.0} %)",
            mb(without),
            mb(with),
            100.0 * with as f64 / without as f64
        );
        assert!(
            (with as f64) < bound * without as f64,
            "{:.1} MB with checkpointing against {:.1} MB without",
            mb(with),
            mb(without)
        );
    }
}
