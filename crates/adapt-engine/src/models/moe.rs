//! Mixture-of-experts feed-forward blocks (Mixtral, Qwen3-MoE): a router picks `k` experts per
//! token; every expert is a SwiGLU MLP whose weights are stacked `[experts, out, in]` and
//! applied with MLX's gathered matmuls (`gather_mm`, or `gather_qmm` for quantized experts).
//! [`Ffn`] is a block's feed-forward part: a dense [`Mlp`] or a [`SparseMoe`], under the one
//! name `mlp` (as mlx-lm names Qwen3-MoE's: `mlp.gate`, `mlp.switch_mlp.up_proj`, …).

use std::collections::HashMap;
use std::path::Path;

use mlx_rs::error::Exception;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::{ModuleParamMut, ModuleParamRef, ModuleParameters};
use mlx_rs::ops::indexing::{take_along_axis, Ellipsis, IndexOp};
use mlx_rs::ops::{argpartition_axis, argsort_axis, gather_mm, gather_qmm, softmax_axis};
use mlx_rs::{stop_gradient, Array};

use super::args::Routing;
use super::layers::{Activation, Linear, Mlp};
use crate::error::EngineError;

type Result<T> = std::result::Result<T, Exception>;

/// Token counts from which expert inputs are sorted by expert first (as mlx-lm does): the
/// gathered matmuls then read each expert's weights once.
const SORT_FROM: usize = 64;

impl Linear {
    /// A stack of expert layers (`[experts, out, in]`) applied to `x` (`[..., 1, in]`), each
    /// row by the experts `indices` name: `[..., k, 1, out]`.
    pub fn gather(&self, x: &Array, indices: &Array, sorted: bool) -> Result<Array> {
        let y = match (&self.quant, self.scales.as_ref()) {
            (Some(q), Some(scales)) => gather_qmm(
                x,
                &*self.weight,
                scales,
                self.biases.as_ref(),
                None::<&Array>,
                indices,
                true,
                q.group_size,
                q.bits,
                sorted,
            )?,
            _ => gather_mm(
                x,
                self.weight.swap_axes(-1, -2)?,
                None::<&Array>,
                indices,
                sorted,
            )?,
        };
        match self.bias.as_ref() {
            Some(b) => y.add(b.take_axis(indices, 0)?.expand_dims(-2)?),
            None => Ok(y),
        }
    }
}

/// The experts: SwiGLU MLPs with stacked weights.
#[derive(Debug, Clone, ModuleParameters)]
pub struct SwitchGlu {
    #[param]
    pub gate_proj: Linear,
    #[param]
    pub up_proj: Linear,
    #[param]
    pub down_proj: Linear,
}

impl SwitchGlu {
    /// `x` (`[..., D]`) through the experts `indices` (`[..., k]`): `[..., k, D]`.
    pub fn forward(&self, x: &Array, indices: &Array) -> Result<Array> {
        let x = x.expand_dims_axes(&[-2, -3])?;
        let indices = stop_gradient(indices)?;
        let sort = indices.size() >= SORT_FROM;
        let (x, idx, inverse) = if sort {
            let k = *indices.shape().last().unwrap_or(&1);
            let flat = indices.flatten(None, None)?;
            let order = argsort_axis(&flat, 0)?;
            let inverse = argsort_axis(&order, 0)?;
            let rows = order.floor_divide(Array::from_int(k))?;
            let x = x.flatten(0, -3)?.take_axis(&rows, 0)?;
            (x, flat.take_axis(&order, 0)?, Some(inverse))
        } else {
            (x, indices.clone(), None)
        };
        let up = self.up_proj.gather(&x, &idx, sort)?;
        let gate = self.gate_proj.gather(&x, &idx, sort)?;
        let h = Activation::Silu.apply(&gate)?.multiply(up)?;
        let mut y = self.down_proj.gather(&h, &idx, sort)?;
        if let Some(inverse) = inverse {
            let mut shape = indices.shape().to_vec();
            shape.extend_from_slice(&y.shape()[1..]);
            y = y.take_axis(&inverse, 0)?.reshape(&shape)?;
        }
        y.squeeze_axes(&[-2])
    }
}

/// A router over experts: each token goes to its `top_k` experts, weighted by their scores.
#[derive(Debug, Clone, ModuleParameters)]
pub struct SparseMoe {
    /// The router: one logit per expert.
    #[param]
    pub gate: Linear,
    #[param]
    pub switch_mlp: SwitchGlu,
    pub top_k: i32,
    pub routing: Routing,
}

impl SparseMoe {
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let logits = self.gate.forward(x)?;
        let k = self.top_k;
        let (indices, scores) = match self.routing {
            Routing::TopKSoftmax => {
                let indices = argpartition_axis(logits.negative()?, k - 1, -1)?;
                let indices = stop_gradient(indices.index((Ellipsis, ..k)))?;
                let top = take_along_axis(&logits, &indices, -1)?;
                (indices, softmax_axis(&top, -1, true)?)
            }
            Routing::SoftmaxTopK { normalize } => {
                let probs = softmax_axis(&logits, -1, true)?;
                let indices = argpartition_axis(&probs, -k, -1)?;
                let indices = stop_gradient(indices.index((Ellipsis, -k..)))?;
                let top = take_along_axis(&probs, &indices, -1)?;
                let top = if normalize {
                    top.divide(top.sum_axis(-1, true)?)?
                } else {
                    top
                };
                (indices, top)
            }
        };
        let y = self.switch_mlp.forward(x, &indices)?;
        let dtype = y.dtype();
        y.multiply(scores.expand_dims(-1)?)?
            .sum_axis(-2, false)?
            .as_dtype(dtype)
    }
}

/// A block's feed-forward part: a dense MLP or a mixture of experts.
#[derive(Debug, Clone)]
pub enum Ffn {
    Dense(Mlp),
    Sparse(SparseMoe),
}

impl Ffn {
    pub fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            Ffn::Dense(mlp) => mlp.forward(x),
            Ffn::Sparse(moe) => moe.forward(x),
        }
    }

    /// The projections adapters may attach to: a dense MLP's; none of the experts' (nor the
    /// router's).
    pub fn linears_mut(&mut self) -> Vec<(&'static str, &mut Linear)> {
        match self {
            Ffn::Dense(mlp) => mlp.linears_mut(),
            Ffn::Sparse(_) => Vec::new(),
        }
    }

    fn inner(&self) -> &dyn ModuleParameters {
        match self {
            Ffn::Dense(mlp) => mlp,
            Ffn::Sparse(moe) => moe,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn ModuleParameters {
        match self {
            Ffn::Dense(mlp) => mlp,
            Ffn::Sparse(moe) => moe,
        }
    }
}

/// The parameters of whichever block is there, under the same names.
impl ModuleParameters for Ffn {
    fn num_parameters(&self) -> usize {
        self.inner().num_parameters()
    }

    fn parameters(&self) -> ModuleParamRef<'_> {
        self.inner().parameters()
    }

    fn parameters_mut(&mut self) -> ModuleParamMut<'_> {
        self.inner_mut().parameters_mut()
    }

    fn trainable_parameters(&self) -> ModuleParamRef<'_> {
        self.inner().trainable_parameters()
    }

    fn freeze_parameters(&mut self, recursive: bool) {
        self.inner_mut().freeze_parameters(recursive)
    }

    fn unfreeze_parameters(&mut self, recursive: bool) {
        self.inner_mut().unfreeze_parameters(recursive)
    }

    fn all_frozen(&self) -> Option<bool> {
        self.inner().all_frozen()
    }

    fn any_frozen(&self) -> Option<bool> {
        self.inner().any_frozen()
    }
}

/// Stacks the per-expert tensors of every layer of a Hugging Face checkpoint (at `path`) as
/// mlx-lm stores them: `model.layers.L.{block}.experts.E.{name}` for each `(name, proj)` of
/// `projections` → `model.layers.L.{block}.switch_mlp.{proj}` (`[experts, …]`).
pub fn stack_layer_experts(
    args: &super::ModelArgs,
    path: &Path,
    arrays: &mut HashMap<String, Array>,
    block: &str,
    projections: &[(&str, &str)],
) -> crate::error::Result<()> {
    let experts = args.moe.as_ref().map_or(0, |m| m.num_experts);
    for l in 0..args.num_hidden_layers {
        let p = format!("model.layers.{l}.{block}");
        for (name, proj) in projections {
            let expert = |e: i32| format!("{p}.experts.{e}.{name}");
            stack_experts(
                arrays,
                path,
                experts,
                expert,
                &format!("{p}.switch_mlp.{proj}"),
            )?;
        }
    }
    Ok(())
}

/// Stacks per-expert tensors (`{expert}.{part}`) into one `[experts, …]` tensor
/// `{target}.{part}` for each part present (weight, scales, biases, bias); `expert(e)` names
/// expert `e`'s layer in the checkpoint at `path`.
fn stack_experts(
    arrays: &mut HashMap<String, Array>,
    path: &Path,
    n_experts: i32,
    expert: impl Fn(i32) -> String,
    target: &str,
) -> crate::error::Result<()> {
    for part in ["weight", "scales", "biases", "bias"] {
        if !arrays.contains_key(&format!("{}.{part}", expert(0))) {
            continue;
        }
        let parts = (0..n_experts)
            .map(|e| {
                let name = format!("{}.{part}", expert(e));
                arrays.remove(&name).ok_or_else(|| {
                    EngineError::invalid_model(
                        path,
                        format!(
                            "tensor '{name}' is missing: the configuration says {n_experts} \
                             experts"
                        ),
                    )
                })
            })
            .collect::<crate::error::Result<Vec<_>>>()?;
        arrays.insert(format!("{target}.{part}"), mlx_rs::ops::stack(&parts, 0)?);
    }
    Ok(())
}
