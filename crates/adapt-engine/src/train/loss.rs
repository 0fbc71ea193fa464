//! The loss: masked cross-entropy over the trained tokens of a batch, and the validation loss
//! over a split.

use adapt_data::{Batch, Batcher, Position};
use mlx_rs::error::Exception;
use mlx_rs::{Array, Dtype};

use super::data_parallel::{local_part, reduce_pair};
use crate::cache::KvCache;
use crate::distributed::Group;
use crate::error::Result;
use crate::models::decoder::Decoder;
use crate::models::Model;

/// Batch → `(inputs, targets, mask)`: each position predicts the next token; the mask is the
/// batch's loss mask shifted onto the predicted tokens.
pub(crate) fn batch_arrays(batch: &Batch) -> Result<(Array, Array, Array)> {
    let (rows, width) = (batch.rows as i32, batch.width as i32);
    let ids: Vec<i32> = batch.tokens.iter().map(|&t| t as i32).collect();
    let ids = Array::from_slice(&ids, &[rows, width]);
    let mask: Vec<f32> = batch.mask.iter().map(|&m| f32::from(m)).collect();
    let mask = Array::from_slice(&mask, &[rows, width]);
    use mlx_rs::ops::indexing::IndexOp;
    Ok((
        ids.index((.., ..width - 1)),
        ids.index((.., 1..)),
        mask.index((.., 1..)),
    ))
}

/// Mean cross-entropy over the masked positions, and their count.
pub fn masked_loss(
    net: &Decoder,
    inputs: &Array,
    targets: &Array,
    mask: &Array,
) -> std::result::Result<Vec<Array>, Exception> {
    let mut caches: Vec<KvCache> = net
        .model
        .layers
        .iter()
        .map(|_| KvCache::discarding())
        .collect();
    let logits = net.head(&net.hidden(inputs, &mut caches)?)?;
    let logits = logits.as_dtype(Dtype::Float32)?;
    let lse = logits.logsumexp_axis(-1, false)?;
    let picked = logits
        .take_along_axis(targets.expand_dims(-1)?, -1)?
        .squeeze_axes(&[-1])?;
    let ce = lse.subtract(&picked)?.multiply(mask)?;
    let ntoks = mask.sum(None)?;
    Ok(vec![
        ce.sum(None)?
            .divide(mlx_rs::ops::maximum(&ntoks, Array::from_f32(1.0))?)?,
        ntoks,
    ])
}

/// Mean validation loss over the first `batches` batches (`-1`: all), weighted by tokens.
/// In a group, each rank measures its rows of every batch and the sums are added up.
pub(crate) fn evaluate(
    lm: &Model,
    valid: &Batcher<'_>,
    batches: i64,
    group: Option<&Group>,
) -> Result<f64> {
    let n = if batches < 0 {
        valid.batches_per_epoch()
    } else {
        (batches as usize).min(valid.batches_per_epoch())
    };
    let (mut sum, mut toks) = (0.0f64, 0.0f64);
    for step in 0..n {
        let batch = valid.batch_at(Position {
            epoch: 0,
            step: step as u64,
        });
        let part = group.map(|g| local_part(&batch, g.rank(), g.size()));
        let (x, y, m) = batch_arrays(part.as_ref().map_or(&batch, |p| &p.batch))?;
        let v = masked_loss(lm.net(), &x, &y, &m)?;
        mlx_rs::transforms::eval(&v)?;
        let t = v[1].item_cast::<f32>() as f64;
        sum += v[0].item_cast::<f32>() as f64 * t;
        toks += t;
    }
    if let Some(g) = group {
        (sum, toks) = reduce_pair(g, sum, toks)?;
    }
    Ok(sum / toks.max(1.0))
}

/// How a step's gradients are evaluated after its loss (`ADAPT_GRAD_EVAL`, a diagnostic; the
/// default is [`GradEval::Queued`]). On an H200, a block at a time trained 1.15–1.4× faster
/// than one by one, and queuing the blocks without waiting 1.0–1.5× faster again; without
/// gradient checkpointing both peak about one block's activations over one by one (9–12 % on
/// the CPU over tests/memory.rs's shapes), which the memory estimate counts. The estimate
/// assumes a block's order: one by one stays under it, all at once may not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GradEval {
    /// One gradient at a time, a host wait each.
    Each,
    /// One block's gradients at a time, a host wait each.
    Block,
    /// Each block's gradients queued in turn without waiting, then one wait for them all.
    Queued,
    /// All of them in one evaluation, in the order MLX chooses.
    All,
}

impl GradEval {
    pub(crate) fn from_env() -> GradEval {
        match std::env::var("ADAPT_GRAD_EVAL").as_deref() {
            Ok("each") => GradEval::Each,
            Ok("block") => GradEval::Block,
            Ok("all") => GradEval::All,
            _ => GradEval::Queued,
        }
    }
}

/// Computes the loss, then the gradients in the order the backward pass produces them: the
/// last block's first (the MLP's before the attention's, by name), down to the first block's,
/// then the parameters outside blocks. One evaluation of everything lets MLX schedule a
/// block's gradients long after the block, keeping its activations (or, under gradient
/// checkpointing, their recomputation) alive meanwhile: on MLX's CPU backend that took about a
/// fifth more memory without checkpointing and undid most of checkpointing's saving. One by
/// one costs a host wait per gradient, which on a GPU leaves the device idle between small
/// kernels; a block at a time keeps the order with one wait per block, and queuing each
/// block's in turn keeps it with one wait in all (the host queues the next block's work while
/// the device runs the last's).
pub(crate) fn eval_in_backward_order(
    values: &[Array],
    grads: &mlx_rs::module::FlattenedModuleParam,
    how: GradEval,
) -> Result<()> {
    mlx_rs::transforms::eval(values)?;
    if how == GradEval::All {
        mlx_rs::transforms::eval(grads.values())?;
        return Ok(());
    }
    for group in backward_groups(grads, how == GradEval::Each) {
        match how {
            GradEval::Queued => mlx_rs::transforms::async_eval(group)?,
            _ => mlx_rs::transforms::eval(group)?,
        }
    }
    if how == GradEval::Queued {
        mlx_rs::transforms::eval(grads.values())?;
    }
    Ok(())
}

/// The gradients grouped by block, last block first, the parameters outside blocks last
/// (each gradient alone with `each`).
fn backward_groups(grads: &mlx_rs::module::FlattenedModuleParam, each: bool) -> Vec<Vec<&Array>> {
    let block = |name: &str| -> Option<usize> {
        let rest = &name[name.find("layers.")? + "layers.".len()..];
        rest[..rest.find('.')?].parse().ok()
    };
    let mut named: Vec<(Option<usize>, &str, &Array)> =
        grads.iter().map(|(k, g)| (block(k), &**k, g)).collect();
    // `None` (outside blocks) sorts below every block, so it comes last.
    named.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let mut groups: Vec<(Option<usize>, Vec<&Array>)> = Vec::new();
    for (b, _, g) in named {
        match groups.last_mut() {
            Some((last, group)) if !each && *last == b => group.push(g),
            _ => groups.push((b, vec![g])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_go_by_block_in_backward_order() {
        let names = [
            "model.embed_tokens.lora_a",
            "model.layers.2.self_attn.q_proj.lora_a",
            "model.layers.10.mlp.down_proj.lora_b",
            "model.layers.2.mlp.up_proj.lora_a",
            "model.layers.10.self_attn.v_proj.lora_a",
        ];
        let grads: mlx_rs::module::FlattenedModuleParam = names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).into(), Array::from_f32(i as f32)))
            .collect();
        let ids = |groups: Vec<Vec<&Array>>| -> Vec<Vec<f32>> {
            groups
                .iter()
                .map(|g| g.iter().map(|a| a.item_cast::<f32>()).collect())
                .collect()
        };
        // Block 10 (the MLP's before the attention's), then block 2, then the rest.
        assert_eq!(
            ids(backward_groups(&grads, false)),
            vec![vec![2.0, 4.0], vec![3.0, 1.0], vec![0.0]]
        );
        assert_eq!(
            ids(backward_groups(&grads, true)),
            vec![vec![2.0], vec![4.0], vec![3.0], vec![1.0], vec![0.0]]
        );
    }
}
