//! Re-quantizing a model folder: every quantized module is first turned back into float
//! weights (with its own group size and bits, per-module overrides included), then every
//! matrix whose input size splits into groups is quantized with MLX's affine group-wise
//! quantization — or left dense with [`Target::Dequantize`]. The output folder is what
//! mlx-lm writes (`"quantization": {"group_size", "bits"}` in `config.json`), and the
//! quality cost is measured against the source on a fixed text: mean KL divergence of the
//! next-token distributions and both perplexities.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Instant;

use mlx_rs::ops::indexing::IndexOp;
use mlx_rs::ops::{dequantize, quantize};
use mlx_rs::{Array, Dtype};
use serde_json::{json, Value};

use crate::convert::{describe, ConvertReport};
use crate::error::{EngineError, Result};
use crate::load::float_dtype;
use crate::load::{folder, load, LoadOptions};
use crate::models::layers::QuantSpec;
use crate::models::{ModelArgs, WeightFormat};
use crate::save::{weights_size, Staging};

/// What to turn the weights into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Quantize(QuantSpec),
    Dequantize,
}

/// The text the quality of a quantization is measured on.
pub const QUALITY_TEXT: &str = "The history of science is the study of the development of \
science and scientific knowledge, including both the natural and social sciences. Science is \
a body of empirical, theoretical, and practical knowledge about the natural world, produced \
by scientists who emphasize the observation, explanation, and prediction of real-world \
phenomena. In the kitchen, a good recipe starts with fresh ingredients: two cups of flour, a \
pinch of salt, three eggs and a glass of milk are whisked together until smooth. The train \
to Lyon leaves at half past nine from platform four; passengers should arrive early because \
the station is busy on Monday mornings. def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n";

/// Writes the model folder `src` into `out` quantized (or dequantized) as `target` says;
/// with `measure`, compares the two on [`QUALITY_TEXT`].
pub fn quantize_folder(
    src: &Path,
    out: &Path,
    target: Target,
    measure: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<ConvertReport> {
    let started = Instant::now();
    if let Target::Quantize(q) = target {
        if !q.is_supported() {
            return Err(EngineError::InvalidRequest(format!(
                "{} bits with groups of {} is not supported; use --bits 4 or 8 and \
                 --group-size 32, 64 or 128",
                q.bits, q.group_size
            )));
        }
    }
    progress("reading the model folder");
    let ckpt = folder::read(src)?;
    let dtype = float_dtype(ckpt.arrays.values());
    progress("restoring float weights");
    let mut arrays = dequantized(&ckpt, dtype)?;
    let spec = match target {
        Target::Quantize(q) => Some(q),
        Target::Dequantize => None,
    };
    if let Some(q) = spec {
        progress(&format!(
            "quantizing to {} bits, groups of {}",
            q.bits, q.group_size
        ));
        let names: Vec<String> = arrays
            .iter()
            .filter(|(n, a)| {
                // Matrices, and stacks of expert matrices.
                let inputs = a.shape().last().copied().unwrap_or(0);
                n.ends_with(".weight") && a.ndim() >= 2 && inputs % q.group_size == 0
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let w = arrays.remove(&name).expect("listed above");
            let (wq, scales, biases) = quantize(&w, q.group_size, q.bits)?;
            let module = name
                .strip_suffix(".weight")
                .expect("filtered on the suffix");
            arrays.insert(name.clone(), wq);
            arrays.insert(format!("{module}.scales"), scales.as_dtype(dtype)?);
            arrays.insert(format!("{module}.biases"), biases.as_dtype(dtype)?);
        }
    }
    mlx_rs::transforms::eval(arrays.values())?;

    progress("writing the model folder");
    let mut config = ckpt.config.clone();
    if let Some(map) = config.as_object_mut() {
        map.remove("quantization");
        map.remove("quantization_config");
        map.insert(
            "torch_dtype".into(),
            Value::from(crate::convert::dtype_name(dtype)),
        );
        if let Some(q) = spec {
            let entry = json!({"group_size": q.group_size, "bits": q.bits, "mode": "affine"});
            map.insert("quantization".into(), entry.clone());
            map.insert("quantization_config".into(), entry);
        }
    }
    let output = write_folder(src, out, &config, &ckpt.args, &arrays)?;
    let mut report = ConvertReport {
        source: src.to_path_buf(),
        output: output.clone(),
        quantization: describe(spec, false, &arrays),
        tensors: arrays.len(),
        bytes_before: weights_size(src),
        bytes_after: weights_size(&output),
        mean_kl: None,
        perplexity_before: None,
        perplexity_after: None,
        seconds: 0.0,
    };
    drop(arrays);
    if measure {
        progress("measuring quality against the source");
        let q = quality(src, &output)?;
        report.mean_kl = Some(q.mean_kl);
        report.perplexity_before = Some(q.perplexity_source);
        report.perplexity_after = Some(q.perplexity_output);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Writes `config` and `arrays` (named as the decoder of `args` names them) as the model
/// folder `out`, under the architecture's checkpoint names, with every other file of `src`
/// (tokenizer, generation settings, …) copied over.
pub(crate) fn write_folder(
    src: &Path,
    out: &Path,
    config: &Value,
    args: &ModelArgs,
    arrays: &HashMap<String, Array>,
) -> Result<std::path::PathBuf> {
    let arrays: HashMap<String, Array> = (arrays.iter())
        .map(|(name, a)| (args.checkpoint_name(name), a.clone()))
        .collect();
    let staging = Staging::new(out)?;
    staging.json("config.json", config)?;
    for entry in fs::read_dir(src)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
    {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let weights = name.ends_with(".safetensors") || name == "model.safetensors.index.json";
        if path.is_file() && !weights && name != "config.json" && !name.starts_with('.') {
            staging.copy(&path)?;
        }
    }
    staging.weights(&arrays)?;
    staging.finish()
}

/// The checkpoint's tensors with every quantized module turned back into a float matrix.
pub(crate) fn dequantized(
    ckpt: &folder::Checkpoint,
    dtype: Dtype,
) -> Result<HashMap<String, Array>> {
    let mut out = HashMap::new();
    for (name, a) in &ckpt.arrays {
        if name.ends_with(".scales") || name.ends_with(".biases") {
            continue;
        }
        let module = name.strip_suffix(".weight");
        let scales = module.and_then(|m| ckpt.arrays.get(&format!("{m}.scales")));
        let biases = module.and_then(|m| ckpt.arrays.get(&format!("{m}.biases")));
        let value = match (module, scales) {
            (Some(module), Some(scales)) => {
                let spec = ckpt.quant.spec(module).ok_or_else(|| {
                    EngineError::invalid_model(
                        &ckpt.dir,
                        format!("'{module}' is quantized but config.json has no quantization"),
                    )
                })?;
                let w = dequantize(a, scales, biases, spec.group_size, spec.bits)?;
                w.as_dtype(dtype)?
            }
            _ => a.clone(),
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// How far a model's predictions moved from its source's.
struct Quality {
    mean_kl: f64,
    perplexity_source: f64,
    perplexity_output: f64,
}

fn quality(source: &Path, output: &Path) -> Result<Quality> {
    // Dense f32 on every backend: the comparison measures the weights, not the kernels.
    let options = LoadOptions {
        format: Some(WeightFormat {
            dtype: Dtype::Float32,
            dequantize: true,
        }),
        keep_quantized: false,
    };
    let log_probs = |dir: &Path| -> Result<(Array, Vec<u32>)> {
        let m = load(dir, &options)?;
        let ids = m.tokenizer.encode(QUALITY_TEXT, true)?;
        let input: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
        let x = Array::from_slice(&input, &[1, input.len() as i32]);
        let logits = m.model.forward(&x, &mut m.model.new_cache())?.index(0);
        let lp = logits.subtract(logits.logsumexp_axis(-1, true)?)?;
        mlx_rs::transforms::eval([&lp])?;
        Ok((lp, ids))
    };
    let (p, ids) = log_probs(source)?;
    let (q, _) = log_probs(output)?;
    let kl = p.exp()?.multiply(p.subtract(&q)?)?.sum_axis(-1, None)?;
    let mean_kl = kl.mean(None)?.item_cast::<f32>() as f64;
    let perplexity = |lp: &Array| -> Result<f64> {
        let n = ids.len() - 1;
        let targets: Vec<i32> = ids[1..].iter().map(|&i| i as i32).collect();
        let t = Array::from_slice(&targets, &[n as i32, 1]);
        let picked = lp.index(..n as i32).take_along_axis(&t, -1)?;
        let nll = picked.mean(None)?.item_cast::<f32>() as f64;
        Ok((-nll).exp())
    };
    Ok(Quality {
        mean_kl,
        perplexity_source: perplexity(&p)?,
        perplexity_output: perplexity(&q)?,
    })
}
