//! Low-rank adapters over a linear layer (any [`Base`]): LoRA adds `scale · (x A) B` to the layer's output;
//! DoRA also rescales each output row to a learned magnitude `m`. A dense or quantized base
//! layer is used as it is (QLoRA is LoRA over a quantized base), so model code never knows an
//! adapter is there. Shapes and names follow mlx-lm: `lora_a` `[in, r]`, `lora_b` `[r, out]`,
//! `m` `[out]`.

use mlx_rs::error::Exception;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;
use mlx_rs::stop_gradient;
use mlx_rs::{Array, Dtype};

type Result<T> = std::result::Result<T, Exception>;

/// What an adapter needs of the linear layer it sits on.
pub trait Base {
    /// The layer's output without the adapter.
    fn base_forward(&self, x: &Array) -> Result<Array>;
    /// The layer's weight `[out, in]` as a dense matrix.
    fn dense_weight(&self) -> Result<Array>;
    /// The layer's bias, if it has one.
    fn bias(&self) -> Option<&Array>;
}

/// A LoRA or DoRA adapter's weights and settings.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Adapter {
    #[param]
    pub lora_a: Param<Array>,
    #[param]
    pub lora_b: Param<Array>,
    /// DoRA's per-row magnitude (`None` for LoRA).
    #[param]
    pub m: Param<Option<Array>>,
    /// Factor on the low-rank update.
    pub scale: f32,
    /// Dropout on the adapter's input while training.
    pub dropout: f32,
    /// Whether dropout is active.
    pub training: bool,
    /// Mixed precision: the f32 weights are cast to the input's dtype at use, so the low-rank
    /// path computes in it too (their gradients come back through the cast as f32). Off, a
    /// half-precision input is promoted to f32 by the matmul instead, as mlx-lm does.
    pub cast_to_input: bool,
}

impl Adapter {
    /// `layer(x)` plus the adapter's update.
    pub fn forward(&self, layer: &impl Base, x: &Array) -> Result<Array> {
        let input = if self.training && self.dropout > 0.0 {
            let keep = 1.0 - self.dropout;
            let mask = mlx_rs::random::bernoulli(&Array::from_f32(keep), x.shape(), None)?;
            x.multiply(mask.as_dtype(x.dtype())?)?
                .multiply(Array::from_f32(1.0 / keep).as_dtype(x.dtype())?)?
        } else {
            x.clone()
        };
        let scale = Array::from_f32(self.scale);
        let z = if self.cast_to_input && x.dtype() != Dtype::Float32 {
            input
                .matmul(self.lora_a.as_dtype(x.dtype())?)?
                .matmul(self.lora_b.as_dtype(x.dtype())?)?
                .multiply(scale.as_dtype(x.dtype())?)?
        } else {
            input
                .matmul(&*self.lora_a)?
                .matmul(&*self.lora_b)?
                .multiply(&scale)?
                .as_dtype(x.dtype())?
        };
        let Some(m) = self.m.as_ref() else {
            return layer.base_forward(x)?.add(z);
        };
        let w = layer.dense_weight()?;
        let y = x.matmul(w.t())?.add(z)?;
        let norm = stop_gradient(&row_norms(&self.adapted(&w)?)?)?;
        let out = y.multiply(m.divide(norm)?.as_dtype(x.dtype())?)?;
        match layer.bias() {
            Some(b) => out.add(b),
            None => Ok(out),
        }
    }

    /// `w + scale · Bᵀ Aᵀ`: the base weight `[out, in]` with the update folded in.
    pub fn adapted(&self, w: &Array) -> Result<Array> {
        let delta = self
            .lora_b
            .t()
            .matmul(self.lora_a.t())?
            .multiply(Array::from_f32(self.scale))?;
        w.add(delta.as_dtype(w.dtype())?)
    }
}

/// The dense weight `w` (`[out, in]`) with an adapter folded in: `w + scale · Bᵀ Aᵀ`, each
/// row then rescaled to its magnitude `m` for DoRA. Computed in f32, returned in `w`'s dtype.
pub fn fold(w: &Array, a: &Array, b: &Array, m: Option<&Array>, scale: f32) -> Result<Array> {
    let delta = b.t().matmul(a.t())?.multiply(Array::from_f32(scale))?;
    let mut fused = w.as_dtype(Dtype::Float32)?.add(delta)?;
    if let Some(m) = m {
        let factor = m.divide(row_norms(&fused)?)?.expand_dims(1)?;
        fused = fused.multiply(factor)?;
    }
    fused.as_dtype(w.dtype())
}

/// The L2 norm of each row of `w`, in f32.
pub fn row_norms(w: &Array) -> Result<Array> {
    w.as_dtype(Dtype::Float32)?
        .square()?
        .sum_axis(1, false)?
        .sqrt()
}
