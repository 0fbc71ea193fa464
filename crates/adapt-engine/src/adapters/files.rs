//! Adapter folders in mlx-lm's layout: `adapters.safetensors` (`model.layers.N.self_attn.
//! q_proj.lora_a`, …) and `adapter_config.json` (`fine_tune_type`, `num_layers`,
//! `lora_parameters`); reading, writing, loading onto a model, and a fingerprint that says
//! which adapter a folder holds.
//!
//! Files name projections as the architecture's checkpoints and mlx-lm do (GPT-2's
//! `model.h.0.attn.c_attn`, not the decoder's `model.layers.0.self_attn.qkv_proj`), and always
//! hold the Hugging Face row order. A model read from GGUF keeps its query and
//! key rows in GGUF's interleaved order, so the output side (`lora_b`'s columns, DoRA's `m`)
//! of adapters on `q_proj` / `k_proj` is reordered on the way in and out.

use std::collections::HashMap;
use std::path::Path;

use mlx_rs::module::ModuleParameters;
use mlx_rs::{Array, Dtype};

use super::attach::attach;
use super::config::{AdapterConfig, FineTuneType};
use crate::error::{EngineError, Result};
use crate::load::layout::reorder_qk_rows;
use crate::models::Model;

pub const ADAPTERS_FILE: &str = "adapters.safetensors";
pub const CONFIG_FILE: &str = "adapter_config.json";

/// The number of heads whose rows are interleaved, for a GGUF-ordered `q_proj` / `k_proj`.
fn permuted_heads(model: &Model, name: &str) -> Option<i32> {
    if !model.args.qk_permuted {
        return None;
    }
    if name.ends_with("self_attn.q_proj") {
        Some(model.args.num_attention_heads)
    } else if name.ends_with("self_attn.k_proj") {
        Some(model.args.num_key_value_heads)
    } else {
        None
    }
}

/// The adapter weights under mlx-lm's names, in the Hugging Face row order.
pub fn adapter_weights(model: &Model) -> Result<HashMap<String, Array>> {
    let mut out = HashMap::new();
    for (name, a) in model.parameters().flatten() {
        let name = name.replace(".adapter.", ".");
        let leaf = name.rsplit('.').next().unwrap_or("");
        if !matches!(leaf, "lora_a" | "lora_b" | "m") || !is_adapter_name(&name) {
            continue;
        }
        let module = &name[..name.len() - leaf.len() - 1];
        let a = match (leaf, permuted_heads(model, module)) {
            ("lora_b", Some(h)) => reorder_qk_rows(&a.t(), h, false)?.t(),
            ("m", Some(h)) => reorder_qk_rows(a, h, false)?,
            _ => a.clone(),
        };
        out.insert(model.args.checkpoint_name(&name), a);
    }
    Ok(out)
}

/// Why the adapter tensor `name` of `file` fits no adapter of `model`.
fn not_an_adapter(model: &Model, file: &Path, name: &str) -> EngineError {
    let experts = ["switch_mlp", "experts", "block_sparse_moe", "mlp.gate."];
    if model.args.moe.is_some() && experts.iter().any(|e| name.contains(e)) {
        return EngineError::InvalidRequest(format!(
            "{}: '{name}' adapts the experts or router of a mixture-of-experts model; Adapt \
             trains and loads adapters on the attention projections of such models only",
            file.display()
        ));
    }
    EngineError::InvalidRequest(format!(
        "{}: '{name}' is not an adapter of this model with this adapter_config.json",
        file.display()
    ))
}

fn is_adapter_name(name: &str) -> bool {
    name.starts_with("model.layers.") && (name.contains(".self_attn.") || name.contains(".mlp."))
}

/// Writes `adapters.safetensors` into `dir` (created if missing). The caller writes
/// `adapter_config.json`.
pub fn save_weights(model: &Model, file: &Path) -> Result<()> {
    let weights = adapter_weights(model)?;
    let refs: Vec<(&str, &Array)> = weights.iter().map(|(k, v)| (k.as_str(), v)).collect();
    Array::save_safetensors(refs, None, file).map_err(|e| EngineError::Write {
        path: file.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads `adapter_config.json` of the adapter folder `dir`.
pub fn read_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        EngineError::InvalidRequest(format!(
            "{}: cannot read the adapter configuration: {e}",
            path.display()
        ))
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        EngineError::InvalidRequest(format!("{}: not valid JSON: {e}", path.display()))
    })?;
    let field = |k: &str| json.get(k).cloned().unwrap_or(serde_json::Value::Null);
    let fine_tune_type = match field("fine_tune_type").as_str().unwrap_or("lora") {
        "lora" => FineTuneType::Lora,
        "dora" => FineTuneType::Dora,
        other => {
            return Err(EngineError::InvalidRequest(format!(
                "{}: 'fine_tune_type' {other:?} is not supported (lora or dora)",
                path.display()
            )))
        }
    };
    let num_layers = field("num_layers").as_i64().unwrap_or(16) as i32;
    let lora_parameters = serde_json::from_value(field("lora_parameters")).map_err(|e| {
        EngineError::InvalidRequest(format!("{}: 'lora_parameters': {e}", path.display()))
    })?;
    Ok(AdapterConfig {
        fine_tune_type,
        num_layers,
        lora_parameters,
    })
}

/// FNV-1a over the adapter folder's weights and configuration: which adapter this is.
pub fn fingerprint(dir: &Path) -> Result<String> {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for name in [CONFIG_FILE, ADAPTERS_FILE] {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| {
            EngineError::InvalidRequest(format!("{}: cannot read: {e}", path.display()))
        })?;
        for b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Ok(format!("{hash:016x}"))
}

/// Attaches the adapters in the folder `dir` (ours or mlx-lm's) to `model`.
pub fn load(model: &mut Model, dir: &Path) -> Result<AdapterConfig> {
    let config = read_config(dir)?;
    attach(model, &config, 0)?;
    load_weights(model, &dir.join(ADAPTERS_FILE))?;
    Ok(config)
}

/// Replaces the attached adapters' weights by those in `file`; every tensor must match an
/// attached adapter in name and shape.
pub fn load_weights(model: &mut Model, file: &Path) -> Result<()> {
    let loaded = Array::load_safetensors(file).map_err(|e| {
        EngineError::InvalidRequest(format!("{}: cannot read adapters: {e}", file.display()))
    })?;
    let current = adapter_weights(model)?;
    let mut update = HashMap::new();
    for (name, a) in loaded {
        let Some(now) = current.get(&name) else {
            return Err(not_an_adapter(model, file, &name));
        };
        if now.shape() != a.shape() {
            return Err(EngineError::InvalidRequest(format!(
                "{}: '{name}' has shape {:?}, the model needs {:?}",
                file.display(),
                a.shape(),
                now.shape()
            )));
        }
        let name = model.args.decoder_name(&name);
        let leaf = name.rsplit('.').next().unwrap_or("");
        let module = &name[..name.len() - leaf.len() - 1];
        let a = match (leaf, permuted_heads(model, module)) {
            ("lora_b", Some(h)) => reorder_qk_rows(&a.t(), h, true)?.t(),
            ("m", Some(h)) => reorder_qk_rows(&a, h, true)?,
            _ => a,
        };
        let internal = format!("{module}.adapter.{leaf}");
        update.insert(
            std::rc::Rc::<str>::from(internal),
            a.as_dtype(Dtype::Float32)?,
        );
    }
    if update.len() != current.len() {
        return Err(EngineError::InvalidRequest(format!(
            "{}: holds {} of the {} adapter tensors this adapter_config.json describes",
            file.display(),
            update.len(),
            current.len()
        )));
    }
    model.net_mut().update_flattened(update);
    Ok(())
}
