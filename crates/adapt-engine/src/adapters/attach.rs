//! Model surgery: fresh adapters attached to the chosen projections of the last blocks with
//! every other parameter frozen, dropout switched for training, and adapters taken off again.
//!
//! Mixture-of-experts models (Mixtral, Qwen3-MoE) are adapted on their attention projections
//! (and any dense MLP): the experts and their router stay frozen, and keys that name them are
//! refused with a message that says so.

use mlx_rs::module::{ModuleParameters, Param};

use super::config::{AdapterConfig, FineTuneType};
use crate::error::{EngineError, Result};
use crate::models::adapter::{row_norms, Adapter};
use crate::models::layers::Linear;
use crate::models::Model;

/// Whether a projection is selected by `keys`: by its block-relative name as the decoder
/// (`self_attn.q_proj`) or the architecture's checkpoints (GPT-2's `attn.c_attn`) call it, or
/// by its last part (`q_proj`).
fn selected(keys: &Option<Vec<String>>, names: [&str; 2]) -> bool {
    match keys {
        None => true,
        Some(keys) => keys.iter().any(|k| {
            names
                .iter()
                .any(|n| k == n || n.rsplit('.').next() == Some(k.as_str()))
        }),
    }
}

/// `model.layers.3.self_attn.q_proj` → `self_attn.q_proj` (whatever the blocks are called).
fn block_relative(name: &str) -> &str {
    name.splitn(4, '.').nth(3).unwrap_or(name)
}

/// The blocks `config` adapts: the last `num_layers` (all for -1).
fn adapted_blocks(model: &Model, config: &AdapterConfig) -> std::ops::Range<usize> {
    let n = model.n_layers();
    let count = if config.num_layers < 0 {
        n
    } else {
        (config.num_layers as usize).min(n)
    };
    n - count..n
}

/// Refuses keys that name a mixture of experts' router or experts, or an MLP projection of a
/// block whose MLP is a mixture of experts: adapters do not train those.
fn check_expert_keys(model: &Model, config: &AdapterConfig) -> Result<()> {
    let (Some(keys), Some(_)) = (&config.lora_parameters.keys, &model.args.moe) else {
        return Ok(());
    };
    let sparse = adapted_blocks(model, config).find(|&i| model.args.layer_experts(i).is_some());
    for key in keys {
        let last = key.rsplit('.').next().unwrap_or(key);
        let expert_part = ["switch_mlp", "experts", "block_sparse_moe"]
            .iter()
            .any(|p| key.contains(p))
            || last == "gate";
        let mlp = key.starts_with("mlp.")
            || matches!(last, "gate_proj" | "up_proj" | "down_proj" | "gate_up_proj");
        let what = match sparse {
            _ if expert_part => "the router or experts".to_string(),
            Some(layer) if mlp => format!("the MLP of block {layer}, a mixture of experts,"),
            _ => continue,
        };
        return Err(EngineError::InvalidRequest(format!(
            "lora_parameters.keys: '{key}' names {what} of this '{}' model; adapters on a \
             mixture-of-experts model train its attention projections (self_attn.q_proj, \
             k_proj, v_proj, o_proj) and leave the experts as they are; remove '{key}' from \
             the keys",
            model.args.architecture
        )));
    }
    Ok(())
}

/// Every adapted-or-adaptable projection of the blocks `config` selects, with its full name.
fn targets<'m>(model: &'m mut Model, config: &AdapterConfig) -> Vec<(String, &'m mut Linear)> {
    let blocks = adapted_blocks(model, config);
    let first = blocks.start;
    let keys = config.lora_parameters.keys.clone();
    let args = model.args.clone();
    model.net_mut().model.layers[blocks]
        .iter_mut()
        .enumerate()
        .flat_map(|(i, block)| {
            let layer = first + i;
            block
                .linears_mut()
                .into_iter()
                .map(move |(name, l)| (format!("model.layers.{layer}.{name}"), l))
                .filter(|(name, _)| {
                    let outside = args.checkpoint_name(name);
                    selected(&keys, [block_relative(name), block_relative(&outside)])
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Attaches fresh adapters (`lora_a` uniform in ±1/√in, `lora_b` zero, DoRA's `m` the base
/// rows' norms) to the selected projections of the last `num_layers` blocks, freezes every
/// other parameter, and returns how many trainable parameters there are.
pub fn attach(model: &mut Model, config: &AdapterConfig, seed: u64) -> Result<usize> {
    let p = &config.lora_parameters;
    check_expert_keys(model, config)?;
    model.net_mut().freeze_parameters(true);
    let mut count = 0;
    let targets = targets(model, config);
    if targets.is_empty() {
        return Err(EngineError::InvalidRequest(format!(
            "no projection matches lora_parameters.keys {:?}; use names such as \
             self_attn.q_proj or mlp.down_proj",
            p.keys.clone().unwrap_or_default()
        )));
    }
    for (i, (_, linear)) in targets.into_iter().enumerate() {
        let w = linear.dense_weight()?;
        let (out, inp) = (w.shape()[0], w.shape()[1]);
        let bound = 1.0 / (inp as f32).sqrt();
        let k = mlx_rs::random::key(seed.wrapping_mul(0x9E37_79B9).wrapping_add(i as u64))?;
        let a = mlx_rs::random::uniform::<_, f32>(-bound, bound, &[inp, p.rank], Some(&k))?;
        let b = mlx_rs::ops::zeros::<f32>(&[p.rank, out])?;
        let m = match config.fine_tune_type {
            FineTuneType::Dora => Some(row_norms(&w)?),
            FineTuneType::Lora => None,
        };
        count += (a.size() + b.size() + m.as_ref().map_or(0, |m| m.size())) as usize;
        let mut adapter = Adapter {
            lora_a: Param::new(a),
            lora_b: Param::new(b),
            m: Param::new(m),
            scale: p.scale,
            dropout: p.dropout,
            training: false,
            cast_to_input: false,
        };
        adapter.unfreeze_parameters(true);
        linear.adapter = Some(adapter);
    }
    Ok(count)
}

/// The block-relative names, as the architecture's checkpoints call them, of the projections
/// that carry an adapter (`self_attn.q_proj`, …), sorted.
pub fn adapted_keys(model: &Model) -> Vec<String> {
    let mut keys: Vec<String> = (model.parameters().flatten().keys())
        .filter_map(|name| name.strip_suffix(".adapter.lora_a"))
        .map(|module| block_relative(&model.args.checkpoint_name(module)).to_string())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Turns adapter dropout on or off.
pub fn set_training(model: &mut Model, training: bool) {
    for block in model.net_mut().model.layers.iter_mut() {
        for (_, l) in block.linears_mut() {
            if let Some(a) = l.adapter.as_mut() {
                a.training = training;
            }
        }
    }
}

/// Mixed precision on or off for every attached adapter (see [`Adapter::cast_to_input`]).
pub fn set_cast_to_input(model: &mut Model, cast: bool) {
    for block in model.net_mut().model.layers.iter_mut() {
        for (_, l) in block.linears_mut() {
            if let Some(a) = l.adapter.as_mut() {
                a.cast_to_input = cast;
            }
        }
    }
}

/// Detaches every adapter, leaving the base model as it was loaded.
pub fn remove(model: &mut Model) -> usize {
    let mut removed = 0;
    for block in model.net_mut().model.layers.iter_mut() {
        for (_, linear) in block.linears_mut() {
            removed += usize::from(linear.adapter.take().is_some());
        }
    }
    removed
}
