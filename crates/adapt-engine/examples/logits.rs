//! Prints what a model computes for a token sequence, as JSON, so another tool (mlx-lm on the
//! same device) can be compared with it: the logits of every position (`--all`) or of the last
//! one, the same positions computed one token at a time through the KV cache, and — for a
//! model with a tokenizer — the greedy continuation `generate` streams.
//!
//! Usage: `logits MODEL TOKENS [--steps N] [--all] [--dense]`. `TOKENS` is a comma-separated
//! list of token ids. The weights are held as stored (quantized kept, the float dtype of the
//! file), or dense f32 with `--dense`. A folder without a tokenizer (a parity fixture) gives
//! logits only. Used by `scripts/gpu/suite.py`.

use std::path::Path;

use adapt_engine::generate::{generate, GenerateParams, SequenceCache};
use adapt_engine::load::folder;
use adapt_engine::mlx_rs::ops::indexing::IndexOp;
use adapt_engine::mlx_rs::{Array, Dtype};
use adapt_engine::{load, LoadOptions, Model, WeightFormat};

type Error = Box<dyn std::error::Error>;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(model), Some(tokens)) = (args.first(), args.get(1)) else {
        return Err("usage: logits MODEL TOKENS [--steps N] [--all] [--dense]".into());
    };
    let flag = |name: &str| args.iter().any(|a| a == name);
    let steps: usize = match args.iter().position(|a| a == "--steps") {
        Some(i) => args.get(i + 1).ok_or("--steps needs a number")?.parse()?,
        None => 16,
    };
    let tokens: Vec<u32> = tokens
        .split(',')
        .map(|t| t.trim().parse())
        .collect::<Result<_, _>>()?;
    let path = Path::new(model);
    let dense = flag("--dense");
    let with_tokenizer = !path.is_dir() || path.join("tokenizer.json").is_file();
    let (model, loaded_as, greedy) = if with_tokenizer {
        let options = LoadOptions {
            format: dense.then_some(DENSE),
            keep_quantized: !dense,
        };
        let lm = load(path, &options)?;
        let params = GenerateParams {
            max_tokens: steps,
            ignore_eos: true,
            ..GenerateParams::default()
        };
        let mut cache = SequenceCache::new(&lm.model);
        let out = generate(
            &lm.model,
            &lm.tokenizer,
            &mut cache,
            &tokens,
            &params,
            &mut |_: &str| true,
        )?;
        (lm.model, lm.info.loaded_as, Some(out.tokens))
    } else {
        let ckpt = folder::read(path)?;
        let stored = ckpt
            .arrays
            .values()
            .map(Array::dtype)
            .find(|d| matches!(d, Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float32))
            .unwrap_or(Dtype::Float32);
        let format = match dense {
            true => DENSE,
            false => WeightFormat {
                dtype: stored,
                dequantize: false,
            },
        };
        (ckpt.build(format)?, format!("{format:?}"), None)
    };
    let (rows, stepped) = logits(&model, &tokens)?;
    let shown = if flag("--all") {
        rows
    } else {
        rows.into_iter().last().into_iter().collect()
    };
    let json = serde_json::json!({
        "model": path,
        "loaded_as": loaded_as,
        "logits": shown,
        "stepped": stepped,
        "greedy": greedy,
    });
    println!("{json}");
    Ok(())
}

const DENSE: WeightFormat = WeightFormat {
    dtype: Dtype::Float32,
    dequantize: true,
};

/// One row of logits per position.
type Rows = Vec<Vec<f32>>;

/// The logits of every position in one pass, and of every position fed one token at a time
/// through the cache.
fn logits(model: &Model, tokens: &[u32]) -> Result<(Rows, Rows), Error> {
    let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
    let input = Array::from_slice(&ids, &[1, ids.len() as i32]);
    let full = model
        .forward(&input, &mut model.new_cache())?
        .index(0)
        .as_dtype(Dtype::Float32)?;
    let mut cache = model.new_cache();
    let mut stepped = Vec::new();
    for &id in &ids {
        let out = model.forward_last(&Array::from_slice(&[id], &[1, 1]), &mut cache)?;
        stepped.push(rows(&out.as_dtype(Dtype::Float32)?)?.remove(0));
    }
    Ok((rows(&full)?, stepped))
}

/// A `[N, vocab]` array as rows.
fn rows(a: &Array) -> Result<Vec<Vec<f32>>, Error> {
    let vocab = *a.shape().last().unwrap_or(&1) as usize;
    Ok(a.try_as_slice::<f32>()?
        .chunks(vocab.max(1))
        .map(<[f32]>::to_vec)
        .collect())
}
