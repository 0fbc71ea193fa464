//! The Llama code path on tiny random models: caching changes no logits, chunked prefill
//! equals one pass, trimming rewinds exactly, and quantized layers compute what their
//! dequantized weights compute.

use std::path::Path;
use std::sync::Mutex;

use adapt_engine::mlx_rs::ops::indexing::IndexOp;
use adapt_engine::mlx_rs::{Array, Dtype};
use adapt_engine::models::{QuantConfig, Weights};
use adapt_engine::testing::{max_abs_diff, random_model, random_weights, tiny_llama_args, F32};
use adapt_engine::{Model, WeightFormat};

/// MLX is used from one thread at a time.
static MLX: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MLX.lock().unwrap_or_else(|e| e.into_inner())
}

fn ids(tokens: &[i32]) -> Array {
    Array::from_slice(tokens, &[1, tokens.len() as i32])
}

const TOKENS: [i32; 12] = [5, 17, 42, 99, 3, 250, 7, 7, 128, 64, 1, 200];

#[test]
fn forward_gives_vocabulary_logits_per_position() {
    let _mlx = lock();
    let model = random_model(&tiny_llama_args(), 1, None, F32).unwrap();
    let logits = model
        .forward(&ids(&TOKENS), &mut model.new_cache())
        .unwrap();
    assert_eq!(logits.shape(), &[1, 12, 256]);
    let last = model
        .forward_last(&ids(&TOKENS), &mut model.new_cache())
        .unwrap();
    assert_eq!(last.shape(), &[1, 256]);
    assert!(max_abs_diff(&last, &logits.index((.., -1, ..))) < 1e-5);
}

#[test]
fn stepping_through_the_cache_equals_one_full_pass() {
    let _mlx = lock();
    for (quantize, tied) in [(None, false), (None, true), (Some(4), false)] {
        let mut args = tiny_llama_args();
        args.tie_word_embeddings = tied;
        let model = random_model(&args, 2, quantize, F32).unwrap();
        let full = model
            .forward(&ids(&TOKENS), &mut model.new_cache())
            .unwrap();
        let mut cache = model.new_cache();
        let first = model.forward(&ids(&TOKENS[..4]), &mut cache).unwrap();
        assert!(max_abs_diff(&first, &full.index((.., ..4, ..))) < 1e-4);
        for (i, &t) in TOKENS.iter().enumerate().skip(4) {
            let step = model.forward(&ids(&[t]), &mut cache).unwrap();
            let d = max_abs_diff(&step.index((.., 0, ..)), &full.index((.., i as i32, ..)));
            assert!(d < 1e-4, "{quantize:?} tied={tied} position {i}: {d}");
        }
        assert_eq!(cache[0].offset(), TOKENS.len());
    }
}

#[test]
fn chunked_prefill_equals_one_pass() {
    let _mlx = lock();
    let model = random_model(&tiny_llama_args(), 3, None, F32).unwrap();
    let full = model
        .forward(&ids(&TOKENS), &mut model.new_cache())
        .unwrap();
    let mut cache = model.new_cache();
    let mut last = None;
    for chunk in TOKENS.chunks(5) {
        last = Some(model.forward_last(&ids(chunk), &mut cache).unwrap());
    }
    assert!(max_abs_diff(&last.unwrap(), &full.index((.., -1, ..))) < 1e-4);
}

#[test]
fn trimming_the_cache_rewinds_exactly() {
    let _mlx = lock();
    let model = random_model(&tiny_llama_args(), 4, None, F32).unwrap();
    let mut cache = model.new_cache();
    model.forward(&ids(&TOKENS), &mut cache).unwrap();
    cache.iter_mut().for_each(|c| {
        c.trim(5);
    });
    // Continue with different tokens after the kept prefix of 7.
    let edited = [TOKENS[..7].to_vec(), vec![11, 12, 13]].concat();
    let step = model.forward(&ids(&edited[7..]), &mut cache).unwrap();
    let fresh = model
        .forward(&ids(&edited), &mut model.new_cache())
        .unwrap();
    assert!(max_abs_diff(&step, &fresh.index((.., 7.., ..))) < 1e-4);
}

#[test]
fn quantized_layers_match_their_dequantized_weights() {
    let _mlx = lock();
    let args = tiny_llama_args();
    for bits in [4, 8] {
        let build = |dequantize| -> Model {
            let arrays = random_weights(&args, 5, Some(bits)).unwrap();
            let format = WeightFormat {
                dtype: Dtype::Float32,
                dequantize,
            };
            let mut w = Weights::new(
                Path::new("<random>"),
                arrays,
                QuantConfig::default(),
                format,
            );
            Model::new(args.clone(), &mut w).unwrap()
        };
        let (quantized, dense) = (build(false), build(true));
        let a = quantized
            .forward(&ids(&TOKENS), &mut quantized.new_cache())
            .unwrap();
        let b = dense
            .forward(&ids(&TOKENS), &mut dense.new_cache())
            .unwrap();
        let d = max_abs_diff(&a, &b);
        assert!(d < 1e-3, "{bits}-bit: {d}");
        assert!(quantized.nbytes() < dense.nbytes());
    }
}

#[test]
fn a_missing_tensor_is_named_in_the_error() {
    let _mlx = lock();
    let args = tiny_llama_args();
    let mut arrays = random_weights(&args, 6, None).unwrap();
    arrays.remove("model.layers.1.mlp.up_proj.weight");
    let mut w = Weights::new(
        Path::new("broken.gguf"),
        arrays,
        QuantConfig::default(),
        F32,
    );
    let err = Model::new(args, &mut w).unwrap_err();
    assert_eq!(err.code(), "model.invalid");
    let msg = err.to_string();
    assert!(
        msg.contains("broken.gguf") && msg.contains("model.layers.1.mlp.up_proj.weight"),
        "{msg}"
    );
}
