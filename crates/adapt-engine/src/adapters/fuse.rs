//! Fusing adapters into their base: in memory ([`fuse`], every attached adapter folded into its
//! layer) or from an adapter folder into a new model folder ([`fuse_folder`]): each adapted
//! projection becomes `W + scale · Bᵀ Aᵀ` (DoRA: each row then rescaled to its magnitude `m`).
//! A quantized projection is dequantized, fused and quantized again with its own settings, or
//! everything is written dense with `dequantize`. A GGUF base is converted first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mlx_rs::ops::{dequantize, quantize};
use mlx_rs::Array;
use serde::Serialize;
use serde_json::Value;

use super::config::{AdapterConfig, FineTuneType};
use super::files::{read_config, ADAPTERS_FILE};
use crate::convert::gguf_to_folder;
use crate::error::{EngineError, Result};
use crate::load::{float_dtype, folder};
use crate::models::adapter::fold;
use crate::models::layers::Linear;
use crate::models::Model;
use crate::quantize::{dequantized, write_folder};

/// Folds every attached adapter into its base layer and removes it. A quantized base is
/// dequantized, fused and quantized again with its own settings (or left dense with
/// `dequantize`).
pub fn fuse(model: &mut Model, dequantize: bool) -> Result<usize> {
    let mut fused = 0;
    for block in model.net_mut().model.layers.iter_mut() {
        for (_, linear) in block.linears_mut() {
            let Some(adapter) = linear.adapter.take() else {
                continue;
            };
            let merged = fold(
                &linear.dense_weight()?,
                &adapter.lora_a,
                &adapter.lora_b,
                adapter.m.value.as_ref(),
                adapter.scale,
            )?;
            *linear = match linear.quant.filter(|_| !dequantize) {
                Some(q) => {
                    let (wq, s, b) = mlx_rs::ops::quantize(&merged, q.group_size, q.bits)?;
                    Linear::quantized(wq, s, b, linear.bias.value.clone(), q)
                }
                None => Linear::dense(merged, linear.bias.value.clone()),
            };
            fused += 1;
        }
    }
    Ok(fused)
}

/// What a fuse wrote.
#[derive(Debug, Clone, Serialize)]
pub struct FuseReport {
    pub source: PathBuf,
    pub adapter: PathBuf,
    pub output: PathBuf,
    pub fine_tune_type: FineTuneType,
    /// Projections changed.
    pub modules: usize,
    pub dequantized: bool,
    pub seconds: f64,
}

/// Fuses the adapter folder `adapter` into the model `src` (folder or GGUF), writing `out`.
pub fn fuse_folder(
    src: &Path,
    adapter: &Path,
    out: &Path,
    dequantize_all: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<FuseReport> {
    let started = Instant::now();
    if out.exists() {
        return Err(EngineError::InvalidRequest(format!(
            "{}: already exists; choose a new output folder",
            out.display()
        )));
    }
    let config = read_config(adapter)?;
    let file = adapter.join(ADAPTERS_FILE);
    let weights = Array::load_safetensors(&file).map_err(|e| {
        EngineError::InvalidRequest(format!("{}: cannot read adapters: {e}", file.display()))
    })?;
    // A GGUF base becomes a folder first (Hugging Face row order, as adapters are stored).
    let converted = (!src.is_dir()).then(|| {
        let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("model");
        out.with_file_name(format!(".{name}.base"))
    });
    let base = match &converted {
        Some(tmp) => {
            let _ = std::fs::remove_dir_all(tmp);
            progress("converting the GGUF base to a model folder");
            gguf_to_folder(src, tmp, progress)?;
            tmp.clone()
        }
        None => src.to_path_buf(),
    };
    let result = fuse_into(
        &base,
        &config,
        weights,
        &file,
        out,
        dequantize_all,
        progress,
    );
    if let Some(tmp) = &converted {
        let _ = std::fs::remove_dir_all(tmp);
    }
    let modules = result?;
    Ok(FuseReport {
        source: src.to_path_buf(),
        adapter: adapter.to_path_buf(),
        output: out.to_path_buf(),
        fine_tune_type: config.fine_tune_type,
        modules,
        dequantized: dequantize_all,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn fuse_into(
    src: &Path,
    config: &AdapterConfig,
    weights: HashMap<String, Array>,
    file: &Path,
    out: &Path,
    dequantize_all: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<usize> {
    progress("reading the model folder");
    let ckpt = folder::read(src)?;
    let dtype = float_dtype(ckpt.arrays.values());
    let mut arrays = if dequantize_all {
        dequantized(&ckpt, dtype)?
    } else {
        ckpt.arrays.clone()
    };
    let weights: HashMap<String, Array> = (weights.into_iter())
        .map(|(name, a)| (ckpt.args.decoder_name(&name), a))
        .collect();
    let mut modules: Vec<String> = weights
        .keys()
        .filter_map(|k| k.strip_suffix(".lora_a").map(str::to_string))
        .collect();
    modules.sort();
    let scale = config.lora_parameters.scale;
    progress(&format!("fusing {} adapted projections", modules.len()));
    for module in &modules {
        let get = |leaf: &str| weights.get(&format!("{module}.{leaf}"));
        let (Some(a), Some(b)) = (get("lora_a"), get("lora_b")) else {
            return Err(EngineError::InvalidRequest(format!(
                "{}: '{module}' has lora_a but no lora_b",
                file.display()
            )));
        };
        let name = format!("{module}.weight");
        let Some(w) = arrays.get(&name) else {
            return Err(EngineError::InvalidRequest(format!(
                "{}: '{module}' is not a projection of the model in {}",
                file.display(),
                src.display()
            )));
        };
        let scales = arrays.get(&format!("{module}.scales"));
        let spec = ckpt.quant.spec(module).filter(|_| scales.is_some());
        let dense = match (spec, scales) {
            (Some(q), Some(s)) => dequantize(
                w,
                s,
                arrays.get(&format!("{module}.biases")),
                q.group_size,
                q.bits,
            )?,
            _ => w.clone(),
        };
        let fused = fold(&dense, a, b, get("m"), scale)?.as_dtype(dtype)?;
        match spec {
            Some(q) => {
                let (wq, s, bq) = quantize(&fused, q.group_size, q.bits)?;
                arrays.insert(name, wq);
                arrays.insert(format!("{module}.scales"), s.as_dtype(dtype)?);
                arrays.insert(format!("{module}.biases"), bq.as_dtype(dtype)?);
            }
            None => {
                arrays.insert(name, fused);
            }
        }
    }
    mlx_rs::transforms::eval(arrays.values())?;
    let mut out_config = ckpt.config.clone();
    if dequantize_all {
        if let Some(map) = out_config.as_object_mut() {
            map.remove("quantization");
            map.remove("quantization_config");
            map.insert(
                "torch_dtype".into(),
                Value::from(crate::convert::dtype_name(dtype)),
            );
        }
    }
    progress("writing the model folder");
    write_folder(src, out, &out_config, &ckpt.args, &arrays)?;
    Ok(modules.len())
}
