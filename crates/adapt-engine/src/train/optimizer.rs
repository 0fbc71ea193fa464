//! The optimizers a run can use (Adam, AdamW, SGD as mlx-rs implements them), behind one type
//! that sets the learning rate, applies gradients and saves or restores its state.
//!
//! Adam's and AdamW's update of every parameter runs as one compiled function: mlx-rs applies
//! them parameter by parameter, about fifteen small kernels each (LoRA on 8 blocks: 112
//! parameters, some 1,700 kernels a step), and on a GPU their launches, not their arithmetic,
//! were the cost. Compiled, each parameter's update is one fused kernel, and the graph is
//! traced once per run (its inputs keep their shapes from step to step). The arithmetic and
//! the state (mlx-rs's, under its names) are mlx-rs's.

use std::collections::HashMap;
use std::rc::Rc;

use mlx_rs::builder::Builder;
use mlx_rs::error::Exception;
use mlx_rs::module::{FlattenedModuleParam, ModuleParameters};
use mlx_rs::optimizers::{
    Adam, AdamW, AdamWBuilder, Optimizer, OptimizerState, Sgd, SgdBuilder, State,
};
use mlx_rs::Array;

use super::config::{OptimizerKind, TrainConfig};
use crate::error::{EngineError, Result};
use crate::models::decoder::Decoder;

/// A run's optimizer, with Adam's and AdamW's update compiled.
pub(crate) struct Opt {
    kind: Kind,
    fused: Fused,
}

/// The optimizers a run can use.
enum Kind {
    Adam(Adam),
    AdamW(AdamW),
    Sgd(Sgd),
}

type Fused = Box<dyn for<'a> FnMut(&'a [Array]) -> std::result::Result<Vec<Array>, Exception>>;

/// Inputs of [`adam_update`] before the parameters: learning rate, β₁, β₂, ε, weight decay.
const SCALARS: usize = 5;

/// Adam's update (AdamW's with weight decay) of many parameters at once: inputs the
/// [`SCALARS`], then each parameter's `(parameter, gradient, m, v)`; outputs each parameter's
/// `(parameter, m, v)` after the step. The operations are mlx-rs's, in its order (a zero decay
/// multiplies by exactly one).
fn adam_update(inputs: &[Array]) -> std::result::Result<Vec<Array>, Exception> {
    let [lr, b1, b2, eps, wd] = &inputs[..SCALARS] else {
        return Err(Exception::custom("adam_update: too few inputs"));
    };
    let one = Array::from_f32(1.0);
    let decay = one.subtract(lr.multiply(wd)?)?;
    let (keep_m, keep_v) = (one.subtract(b1)?, one.subtract(b2)?);
    let mut out = Vec::with_capacity((inputs.len() - SCALARS) / 4 * 3);
    for quad in inputs[SCALARS..].chunks_exact(4) {
        let [p, g, m, v] = quad else { unreachable!() };
        let m = b1.multiply(m)?.add(keep_m.multiply(g)?)?;
        let v = b2.multiply(v)?.add(keep_v.multiply(g.square()?)?)?;
        let step = lr.multiply(m.divide(v.sqrt()?.add(eps)?)?)?;
        out.extend([p.multiply(&decay)?.subtract(step)?, m, v]);
    }
    Ok(out)
}

impl Opt {
    pub(crate) fn new(config: &TrainConfig) -> Opt {
        Opt {
            kind: Kind::new(config),
            fused: Box::new(mlx_rs::transforms::compile::compile(adam_update, false)),
        }
    }
}

impl Kind {
    fn new(config: &TrainConfig) -> Kind {
        let lr = config.learning_rate as f32;
        let option = |name: &str| config.optimizer_option(name).map(|v| v as f32);
        match config.optimizer {
            OptimizerKind::Adam => Kind::Adam(Adam::new(lr)),
            OptimizerKind::AdamW => {
                let mut b = AdamWBuilder::new(lr);
                if let Some(wd) = option("weight_decay") {
                    b = b.weight_decay(wd);
                }
                Kind::AdamW(b.build().unwrap_or_else(|e| match e {}))
            }
            OptimizerKind::Sgd => {
                let mut b = SgdBuilder::new(lr);
                if let Some(m) = option("momentum") {
                    b = b.momentum(m);
                }
                if let Some(wd) = option("weight_decay") {
                    b = b.weight_decay(wd);
                }
                Kind::Sgd(b.build().unwrap_or_else(|e| match e {}))
            }
        }
    }
}

impl Opt {
    pub(crate) fn set_lr(&mut self, lr: f32) {
        match &mut self.kind {
            Kind::Adam(o) => o.lr = Array::from_f32(lr),
            Kind::AdamW(o) => o.lr = Array::from_f32(lr),
            Kind::Sgd(o) => o.lr = lr,
        }
    }

    /// Applies `grads` to `net`'s parameters of the same names.
    pub(crate) fn update(&mut self, net: &mut Decoder, grads: &FlattenedModuleParam) -> Result<()> {
        let zero = Array::from_f32(0.0);
        let (scalars, state) = match &mut self.kind {
            Kind::Sgd(o) => return Ok(o.update(net, grads)?),
            Kind::Adam(o) => ([&o.lr, &o.betas.0, &o.betas.1, &o.eps, &zero], &mut o.state),
            Kind::AdamW(o) => (
                [&o.lr, &o.betas.0, &o.betas.1, &o.eps, &o.weight_decay],
                &mut o.state,
            ),
        };
        let mut params = net.parameters_mut().flatten();
        // A fixed order, so each step's inputs match the traced graph's.
        let mut keys: Vec<&Rc<str>> = grads.keys().filter(|k| params.contains_key(*k)).collect();
        keys.sort();
        let mut inputs: Vec<Array> = scalars.into_iter().cloned().collect();
        for key in &keys {
            let p: &Array = params[*key];
            let (m, v) = state.entry((*key).clone()).or_insert_with(|| {
                // mlx-rs starts from f32 zeros (as scalars); full-shape ones keep the inputs'
                // shapes the same from the first step on.
                let zeros = || mlx_rs::ops::zeros::<f32>(p.shape());
                (
                    zeros().unwrap_or(zero.clone()),
                    zeros().unwrap_or(zero.clone()),
                )
            });
            inputs.extend([p.clone(), grads[*key].clone(), m.clone(), v.clone()]);
        }
        let outputs = (self.fused)(&inputs)?;
        for (key, out) in keys.into_iter().zip(outputs.chunks_exact(3)) {
            if let Some(p) = params.get_mut(key) {
                **p = out[0].clone();
            }
            state.insert(key.clone(), (out[1].clone(), out[2].clone()));
        }
        Ok(())
    }

    pub(crate) fn state(&mut self) -> Result<Vec<(Rc<str>, Array)>> {
        let flat = match &mut self.kind {
            Kind::Adam(o) => o.state_mut().flatten(),
            Kind::AdamW(o) => o.state_mut().flatten(),
            Kind::Sgd(o) => o.state_mut().flatten(),
        }
        .map_err(|e| Exception::custom(e.to_string()))?;
        Ok(flat.into_iter().map(|(k, v)| (k, v.clone())).collect())
    }

    pub(crate) fn load_state(&mut self, arrays: HashMap<String, Array>) -> Result<()> {
        let bad = |e: String| EngineError::InvalidRequest(format!("optimizer state: {e}"));
        match &mut self.kind {
            Kind::Adam(o) => {
                o.state =
                    State::<(Array, Array)>::unflatten(arrays).map_err(|e| bad(e.to_string()))?
            }
            Kind::AdamW(o) => {
                o.state =
                    State::<(Array, Array)>::unflatten(arrays).map_err(|e| bad(e.to_string()))?
            }
            Kind::Sgd(o) => {
                o.state = State::<Array>::unflatten(arrays).map_err(|e| bad(e.to_string()))?
            }
        }
        Ok(())
    }
}

/// The gradients scaled down so that their global norm is at most `max` (unchanged when it is
/// already, or without a `max`) — mlx-rs's `clip_grad_norm`, without reading the norm back: the
/// scale stays on the device, so clipping adds no wait to a step.
pub(crate) fn clipped(
    grads: FlattenedModuleParam,
    max: Option<f32>,
) -> Result<FlattenedModuleParam> {
    let Some(max) = max else {
        return Ok(grads);
    };
    let mut squares = Array::from_f32(0.0);
    for g in grads.values() {
        squares = squares.add(g.as_dtype(mlx_rs::Dtype::Float32)?.square()?.sum(None)?)?;
    }
    let scale = mlx_rs::ops::minimum(
        Array::from_f32(max).divide(squares.sqrt()?.add(Array::from_f32(1e-6))?)?,
        Array::from_f32(1.0),
    )?;
    Ok(grads
        .into_iter()
        .map(|(k, g)| {
            let by = scale.as_dtype(g.dtype())?;
            Ok((k, g.multiply(by)?))
        })
        .collect::<std::result::Result<_, Exception>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_abs_diff;

    fn filled(shape: &[i32], seed: f32) -> Array {
        let n: i32 = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
        Array::from_slice(&values, shape)
    }

    /// Three steps of the compiled update against mlx-rs's Adam and AdamW on the same
    /// parameters and gradients, from mlx-rs's initial state.
    #[test]
    fn the_compiled_update_is_mlx_rs_adam_and_adamw() {
        let mut fused = mlx_rs::transforms::compile::compile(adam_update, false);
        for wd in [0.0f32, 0.1] {
            let mut theirs = if wd == 0.0 {
                Kind::Adam(Adam::new(0.01))
            } else {
                Kind::AdamW(AdamWBuilder::new(0.01).weight_decay(wd).build().unwrap())
            };
            let shapes: [&[i32]; 2] = [&[3, 4], &[4, 2]];
            let names: Vec<Rc<str>> = vec!["a".into(), "b".into()];
            let mut ours: Vec<Array> = (0..2).map(|i| filled(shapes[i], i as f32)).collect();
            let mut reference = ours.clone();
            let mut state: Vec<(Array, Array)> = shapes
                .iter()
                .map(|s| {
                    let z = || mlx_rs::ops::zeros::<f32>(s).unwrap();
                    (z(), z())
                })
                .collect();
            for step in 0..3 {
                let grads: Vec<Array> = (0..2)
                    .map(|i| filled(shapes[i], 10.0 * (step + 1) as f32 + i as f32))
                    .collect();
                let mut inputs: Vec<Array> = [0.01, 0.9, 0.999, 1e-8, wd]
                    .iter()
                    .map(|&v| Array::from_f32(v))
                    .collect();
                for i in 0..2 {
                    inputs.extend([
                        ours[i].clone(),
                        grads[i].clone(),
                        state[i].0.clone(),
                        state[i].1.clone(),
                    ]);
                }
                let out = fused(&inputs).unwrap();
                for i in 0..2 {
                    let (m, v) = match &mut theirs {
                        Kind::Adam(o) => {
                            o.update_single(&names[i], &grads[i], &mut reference[i])
                                .unwrap();
                            o.state[&names[i]].clone()
                        }
                        Kind::AdamW(o) => {
                            o.update_single(&names[i], &grads[i], &mut reference[i])
                                .unwrap();
                            o.state[&names[i]].clone()
                        }
                        Kind::Sgd(_) => unreachable!(),
                    };
                    ours[i] = out[3 * i].clone();
                    state[i] = (out[3 * i + 1].clone(), out[3 * i + 2].clone());
                    let diff = max_abs_diff(&ours[i], &reference[i]);
                    assert!(diff < 1e-6, "wd {wd}, step {step}, parameter {i}: {diff}");
                    assert!(max_abs_diff(&state[i].0, &m) < 1e-6);
                    assert!(max_abs_diff(&state[i].1, &v) < 1e-6);
                }
            }
            // The parameters moved.
            assert!(max_abs_diff(&ours[0], &filled(shapes[0], 0.0)) > 1e-3);
        }
    }

    #[test]
    fn clipping_is_mlx_rs_clip_grad_norm_without_a_wait() {
        let grads: FlattenedModuleParam = [("a", &[3, 4][..], 0.0), ("b", &[5][..], 2.0)]
            .into_iter()
            .map(|(k, shape, seed)| (Rc::from(k), filled(shape, seed)))
            .collect();
        let norm = grads
            .values()
            .map(|g| g.square().unwrap().sum(None).unwrap().item_cast::<f32>())
            .sum::<f32>()
            .sqrt();
        // Over the norm (scaled down), under it (unchanged), and no maximum at all.
        for max in [norm / 3.0, norm * 2.0] {
            let ours = clipped(grads.clone(), Some(max)).unwrap();
            let (theirs, total) = mlx_rs::optimizers::clip_grad_norm(&grads, max).unwrap();
            assert!((total - norm).abs() < 1e-5 * norm);
            for (k, g) in &theirs {
                assert!(max_abs_diff(&ours[k], g) < 1e-6, "{k} at max {max}");
            }
            let scaled = ours
                .values()
                .map(|g| g.square().unwrap().sum(None).unwrap().item_cast::<f32>())
                .sum::<f32>()
                .sqrt();
            assert!(scaled <= max * (1.0 + 1e-5) && scaled >= norm.min(max) * (1.0 - 1e-5));
        }
        let same = clipped(grads.clone(), None).unwrap();
        for (k, g) in &grads {
            assert_eq!(max_abs_diff(&same[k], g), 0.0);
        }
    }
}
