//! Model surgery: fresh adapters attached to the chosen projections of the last blocks with
//! every other parameter frozen, dropout switched for training, and adapters taken off again.

use mlx_rs::module::{ModuleParameters, Param};

use super::config::{AdapterConfig, FineTuneType};
use crate::error::{EngineError, Result};
use crate::models::adapter::{row_norms, Adapter};
use crate::models::layers::Linear;
use crate::models::Model;

/// Whether the block-relative projection `name` (`self_attn.q_proj`) is selected by `keys`.
fn selected(keys: &Option<Vec<String>>, name: &str) -> bool {
    match keys {
        None => true,
        Some(keys) => keys
            .iter()
            .any(|k| k == name || name.rsplit('.').next() == Some(k.as_str())),
    }
}

/// Every adapted-or-adaptable projection of the blocks `config` selects, with its full name.
fn targets<'m>(model: &'m mut Model, config: &AdapterConfig) -> Vec<(String, &'m mut Linear)> {
    let n = model.n_layers();
    let count = if config.num_layers < 0 {
        n
    } else {
        (config.num_layers as usize).min(n)
    };
    let keys = config.lora_parameters.keys.clone();
    model.net_mut().model.layers[n - count..]
        .iter_mut()
        .enumerate()
        .flat_map(|(i, block)| {
            let layer = n - count + i;
            block
                .linears_mut()
                .into_iter()
                .filter(|(name, _)| selected(&keys, name))
                .map(move |(name, l)| (format!("model.layers.{layer}.{name}"), l))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Attaches fresh adapters (`lora_a` uniform in ±1/√in, `lora_b` zero, DoRA's `m` the base
/// rows' norms) to the selected projections of the last `num_layers` blocks, freezes every
/// other parameter, and returns how many trainable parameters there are.
pub fn attach(model: &mut Model, config: &AdapterConfig, seed: u64) -> Result<usize> {
    let p = &config.lora_parameters;
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
        };
        adapter.unfreeze_parameters(true);
        linear.adapter = Some(adapter);
    }
    Ok(count)
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
