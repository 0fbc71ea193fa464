//! The loss: masked cross-entropy over the trained tokens of a batch, and the validation loss
//! over a split.

use std::rc::Rc;

use adapt_data::{Batch, Batcher, Position};
use mlx_rs::error::Exception;
use mlx_rs::module::ModuleParameters;
use mlx_rs::{Array, Dtype};

use super::config::TrainConfig;
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

/// A pass's loss and gradients: `(values, gradients)` as `mlx_rs::nn::value_and_grad` gives
/// them (values: the mean loss and the trained-token count).
pub(crate) type Pass = (Vec<Array>, mlx_rs::module::FlattenedModuleParam);

/// `[inputs, targets, mask, trained parameters…, frozen parameters…]` → `[loss, count,
/// gradients of the trained parameters…]`.
type PassFn = dyn FnMut(&[Array]) -> std::result::Result<Vec<Array>, Exception>;

/// The forward and backward pass as one compiled function, used for every run without
/// dropout or gradient checkpointing (`ADAPT_COMPILE_STEP=0` switches it off, a diagnostic):
/// MLX traces it once per input shape and afterwards replays the traced graph with its
/// elementwise chains fused, instead of the host building every operation of every pass anew.
/// On an H200 that halved the host's time per pass and cut the device's by up to a fifth
/// (docs/gpu.md, the sixth lease). It runs on its own copy of the model (sharing its arrays).
/// Every parameter goes in as an input — the trained ones as they are at each step, the frozen
/// ones as they were when it was made (they never change in a run) — so the trace holds
/// tracers, never weights. Made after the run's settings are on the model (training mode),
/// which the copy keeps. Not with dropout: the random state would be traced as a constant.
/// Not with gradient checkpointing: compiled, the checkpointed blocks peaked at 54–56 % of the
/// peak without checkpointing (tests/memory.rs, on the CPU), built anew at 34–48 %.
pub(crate) struct CompiledPass {
    call: Box<PassFn>,
    /// The trained parameters' names, in the order of the inputs and gradients.
    trained: Vec<Rc<str>>,
    /// The frozen parameters, in the order of the inputs after the trained ones.
    frozen: Vec<Array>,
}

impl CompiledPass {
    /// The compiled pass for a run of `config` on `net` (its settings on it), or `None` where
    /// the run builds each pass anew (dropout, gradient checkpointing, `ADAPT_COMPILE_STEP=0`).
    pub(crate) fn for_run(net: &Decoder, config: &TrainConfig) -> Option<CompiledPass> {
        (std::env::var("ADAPT_COMPILE_STEP").as_deref() != Ok("0")
            && config.lora_parameters.dropout == 0.0
            && !config.grad_checkpoint)
            .then(|| CompiledPass::new(net))
    }

    fn new(net: &Decoder) -> CompiledPass {
        let mut trained: Vec<Rc<str>> = net.trainable_parameters().flatten().into_keys().collect();
        trained.sort();
        let all = net.parameters().flatten();
        let mut frozen_names: Vec<Rc<str>> = all
            .keys()
            .filter(|k| trained.binary_search(k).is_err())
            .cloned()
            .collect();
        frozen_names.sort();
        let frozen = frozen_names.iter().map(|k| all[k].clone()).collect();
        let names: Vec<Rc<str>> = trained.iter().chain(&frozen_names).cloned().collect();
        let (mut copy, n) = (net.clone(), trained.len());
        let pass = move |args: &[Array]| -> std::result::Result<Vec<Array>, Exception> {
            copy.update_flattened(
                names
                    .iter()
                    .cloned()
                    .zip(args[3..].iter().cloned())
                    .collect(),
            );
            let mut vg = mlx_rs::nn::value_and_grad(
                |net: &mut Decoder, (x, y, m): (&Array, &Array, &Array)| masked_loss(net, x, y, m),
            );
            let (mut out, mut grads) = vg(&mut copy, (&args[0], &args[1], &args[2]))?;
            for k in &names[..n] {
                out.push(grads.remove(k).ok_or_else(|| {
                    Exception::custom(format!("no gradient for the trained parameter {k}"))
                })?);
            }
            Ok(out)
        };
        let mut compiled = mlx_rs::transforms::compile::compile(pass, false);
        CompiledPass {
            call: Box::new(move |args: &[Array]| compiled(args)),
            trained,
            frozen,
        }
    }

    /// The loss and gradients of `net`'s trained parameters for one micro-batch, as
    /// `value_and_grad` would give them.
    pub(crate) fn pass(
        &mut self,
        net: &Decoder,
        (x, y, m): (&Array, &Array, &Array),
    ) -> std::result::Result<Pass, Exception> {
        let now = net.trainable_parameters().flatten();
        let mut args = vec![x.clone(), y.clone(), m.clone()];
        for k in &self.trained {
            let p = now
                .get(k)
                .ok_or_else(|| Exception::custom(format!("the trained parameter {k} is gone")))?;
            args.push((*p).clone());
        }
        args.extend(self.frozen.iter().cloned());
        let mut out = (self.call)(&args)?;
        let grads = out.split_off(2);
        Ok((out, self.trained.iter().cloned().zip(grads).collect()))
    }
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
    use crate::adapters::{attach, AdapterConfig};
    use crate::testing::{random_model, tiny_llama_args, F32};

    /// The compiled pass gives `value_and_grad`'s loss, count and gradients — on a dense and a
    /// 4-bit base, on its first call (traced), on later ones (replayed with new adapter
    /// values) and at a new input shape. With MLX's compilation switched off the same function
    /// must give them bit for bit (its wiring: inputs, names, the model's copy); compiled,
    /// fused float32 kernels round differently.
    #[test]
    fn the_compiled_pass_is_value_and_grad() {
        for compiling in [false, true] {
            if !compiling {
                mlx_rs::transforms::compile::disable_compile();
            }
            for bits in [None, Some(4)] {
                let case = format!("compiling {compiling}, bits {bits:?}");
                compare_passes(bits, if compiling { 1e-2 } else { 0.0 }, &case);
            }
            mlx_rs::transforms::compile::enable_compile();
        }
    }

    /// Three passes of both kinds; differences within `tolerance` of each array's largest
    /// entry (a tenth of it for the loss).
    fn compare_passes(bits: Option<i32>, tolerance: f32, case: &str) {
        use mlx_rs::ops::indexing::IndexOp;
        mlx_rs::random::seed(7).unwrap();
        let mut lm = random_model(&tiny_llama_args(), 5, bits, F32).unwrap();
        attach(&mut lm, &AdapterConfig::default(), 0).unwrap();
        let mut compiled = CompiledPass::new(lm.net());
        let mut uncompiled =
            mlx_rs::nn::value_and_grad(|net: &mut Decoder, (x, y, m): (&Array, &Array, &Array)| {
                masked_loss(net, x, y, m)
            });
        let largest = |a: &Array| a.abs().unwrap().max(None).unwrap().item_cast::<f32>();
        for (round, width) in [(0, 12), (1, 12), (2, 20)] {
            // New adapter values each round (the B matrices start at zero).
            let moved: mlx_rs::module::FlattenedModuleParam = lm
                .net()
                .trainable_parameters()
                .flatten()
                .into_iter()
                .map(|(k, p)| {
                    let r = mlx_rs::random::normal::<f32>(p.shape(), None, None, None).unwrap();
                    (
                        k,
                        p.add(r.multiply(Array::from_f32(0.05)).unwrap()).unwrap(),
                    )
                })
                .collect();
            lm.net_mut().update_flattened(moved);
            let ids = mlx_rs::random::randint::<_, i32>(0, 256, &[2, width], None).unwrap();
            let mask = mlx_rs::random::bernoulli(None, &[2, width], None).unwrap();
            let mask = mask.as_dtype(Dtype::Float32).unwrap();
            let x = ids.index((.., ..width - 1));
            let (y, m) = (ids.index((.., 1..)), mask.index((.., 1..)));
            let (want, want_grads) = uncompiled(lm.net_mut(), (&x, &y, &m)).unwrap();
            let (got, got_grads) = compiled.pass(lm.net(), (&x, &y, &m)).unwrap();
            let case = format!("{case}, round {round}");
            let diff = largest(&want[0].subtract(&got[0]).unwrap());
            assert!(
                diff <= tolerance / 10.0 * largest(&want[0]),
                "loss, {case}: {diff}"
            );
            assert_eq!(largest(&want[1]), largest(&got[1]), "count, {case}");
            assert_eq!(want_grads.len(), got_grads.len(), "{case}");
            for (name, g) in &want_grads {
                let diff = largest(&g.subtract(&got_grads[name]).unwrap());
                assert!(largest(g) > 0.0, "{name}: no gradient, {case}");
                assert!(diff <= tolerance * largest(g), "{name}, {case}: {diff}");
            }
        }
    }

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
