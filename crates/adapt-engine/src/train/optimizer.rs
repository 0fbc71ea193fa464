//! The optimizers a run can use (Adam, AdamW, SGD as mlx-rs implements them), behind one type
//! that sets the learning rate, applies gradients and saves or restores its state.

use std::collections::HashMap;
use std::rc::Rc;

use mlx_rs::builder::Builder;
use mlx_rs::error::Exception;
use mlx_rs::module::FlattenedModuleParam;
use mlx_rs::optimizers::{
    Adam, AdamW, AdamWBuilder, Optimizer, OptimizerState, Sgd, SgdBuilder, State,
};
use mlx_rs::Array;

use super::config::{OptimizerKind, TrainConfig};
use crate::error::{EngineError, Result};
use crate::models::decoder::Decoder;

/// The optimizers a run can use.
pub(crate) enum Opt {
    Adam(Adam),
    AdamW(AdamW),
    Sgd(Sgd),
}

impl Opt {
    pub(crate) fn new(config: &TrainConfig) -> Opt {
        let lr = config.learning_rate as f32;
        let option = |name: &str| config.optimizer_option(name).map(|v| v as f32);
        match config.optimizer {
            OptimizerKind::Adam => Opt::Adam(Adam::new(lr)),
            OptimizerKind::AdamW => {
                let mut b = AdamWBuilder::new(lr);
                if let Some(wd) = option("weight_decay") {
                    b = b.weight_decay(wd);
                }
                Opt::AdamW(b.build().unwrap_or_else(|e| match e {}))
            }
            OptimizerKind::Sgd => {
                let mut b = SgdBuilder::new(lr);
                if let Some(m) = option("momentum") {
                    b = b.momentum(m);
                }
                if let Some(wd) = option("weight_decay") {
                    b = b.weight_decay(wd);
                }
                Opt::Sgd(b.build().unwrap_or_else(|e| match e {}))
            }
        }
    }

    pub(crate) fn set_lr(&mut self, lr: f32) {
        match self {
            Opt::Adam(o) => o.lr = Array::from_f32(lr),
            Opt::AdamW(o) => o.lr = Array::from_f32(lr),
            Opt::Sgd(o) => o.lr = lr,
        }
    }

    pub(crate) fn update(&mut self, net: &mut Decoder, grads: &FlattenedModuleParam) -> Result<()> {
        match self {
            Opt::Adam(o) => o.update(net, grads)?,
            Opt::AdamW(o) => o.update(net, grads)?,
            Opt::Sgd(o) => o.update(net, grads)?,
        }
        Ok(())
    }

    pub(crate) fn state(&mut self) -> Result<Vec<(Rc<str>, Array)>> {
        let flat = match self {
            Opt::Adam(o) => o.state_mut().flatten(),
            Opt::AdamW(o) => o.state_mut().flatten(),
            Opt::Sgd(o) => o.state_mut().flatten(),
        }
        .map_err(|e| Exception::custom(e.to_string()))?;
        Ok(flat.into_iter().map(|(k, v)| (k, v.clone())).collect())
    }

    pub(crate) fn load_state(&mut self, arrays: HashMap<String, Array>) -> Result<()> {
        let bad = |e: String| EngineError::InvalidRequest(format!("optimizer state: {e}"));
        match self {
            Opt::Adam(o) => {
                o.state =
                    State::<(Array, Array)>::unflatten(arrays).map_err(|e| bad(e.to_string()))?
            }
            Opt::AdamW(o) => {
                o.state =
                    State::<(Array, Array)>::unflatten(arrays).map_err(|e| bad(e.to_string()))?
            }
            Opt::Sgd(o) => {
                o.state = State::<Array>::unflatten(arrays).map_err(|e| bad(e.to_string()))?
            }
        }
        Ok(())
    }
}
