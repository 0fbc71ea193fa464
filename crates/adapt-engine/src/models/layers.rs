//! Building blocks shared by the model files: [`Linear`] (dense or quantized — one layer type,
//! so model code never knows which), [`RmsNorm`], [`Rope`], [`Attention`] and the gated
//! [`Mlp`]. Parameter names follow mlx-lm's (`q_proj.weight`, `q_proj.scales`, …).

use mlx_rs::error::Exception;
use mlx_rs::fast::{self, ScaledDotProductAttentionMask};
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;
use mlx_rs::ops::indexing::IndexOp;
use mlx_rs::ops::{dequantize, quantized_matmul};
use mlx_rs::Array;

use crate::cache::KvCache;

type Result<T> = std::result::Result<T, Exception>;

/// Group-wise affine quantization of a weight, as MLX stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QuantSpec {
    pub group_size: i32,
    pub bits: i32,
}

/// A linear map `y = x Wᵀ + b` whose weight is either dense or MLX-quantized.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Linear {
    /// `[out, in]` when dense; packed `uint32` `[out, in * bits / 32]` when quantized.
    #[param]
    pub weight: Param<Array>,
    #[param]
    pub bias: Param<Option<Array>>,
    /// Per-group scales and biases of a quantized weight.
    #[param]
    pub scales: Param<Option<Array>>,
    #[param]
    pub biases: Param<Option<Array>>,
    pub quant: Option<QuantSpec>,
}

impl Linear {
    /// A dense layer.
    pub fn dense(weight: Array, bias: Option<Array>) -> Linear {
        Linear {
            weight: Param::new(weight),
            bias: Param::new(bias),
            scales: Param::new(None),
            biases: Param::new(None),
            quant: None,
        }
    }

    /// A quantized layer from MLX's packed triplet.
    pub fn quantized(
        weight: Array,
        scales: Array,
        biases: Array,
        bias: Option<Array>,
        quant: QuantSpec,
    ) -> Linear {
        Linear {
            weight: Param::new(weight),
            bias: Param::new(bias),
            scales: Param::new(Some(scales)),
            biases: Param::new(Some(biases)),
            quant: Some(quant),
        }
    }

    /// Applies the layer to `x` (`[..., in]`).
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let y = match (&self.quant, self.scales.as_ref()) {
            (Some(q), Some(scales)) => quantized_matmul(
                x,
                &*self.weight,
                scales,
                self.biases.as_ref(),
                true,
                q.group_size,
                q.bits,
            )?,
            _ => x.matmul(self.weight.t())?,
        };
        match self.bias.as_ref() {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }

    /// Rows `ids` of the weight as dense vectors: the layer used as an embedding table.
    pub fn rows(&self, ids: &Array) -> Result<Array> {
        let shape: Vec<i32> = ids.shape().iter().copied().chain([-1]).collect();
        let flat = ids.flatten(None, None)?;
        let rows = match (&self.quant, self.scales.as_ref(), self.biases.as_ref()) {
            (Some(q), Some(s), Some(b)) => dequantize(
                self.weight.index(&flat),
                s.index(&flat),
                &b.index(&flat),
                q.group_size,
                q.bits,
            )?,
            _ => self.weight.index(&flat),
        };
        rows.reshape(&shape)
    }

    /// The weight as a dense matrix (dequantized if needed), in the scales' dtype.
    pub fn dense_weight(&self) -> Result<Array> {
        match (&self.quant, self.scales.as_ref()) {
            (Some(q), Some(s)) => {
                dequantize(&*self.weight, s, self.biases.as_ref(), q.group_size, q.bits)
            }
            _ => Ok((*self.weight).clone()),
        }
    }
}

/// Root-mean-square layer normalization with a learned scale.
#[derive(Debug, Clone, ModuleParameters)]
pub struct RmsNorm {
    #[param]
    pub weight: Param<Array>,
    pub eps: f32,
}

impl RmsNorm {
    pub fn new(weight: Array, eps: f32) -> RmsNorm {
        RmsNorm {
            weight: Param::new(weight),
            eps,
        }
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        fast::rms_norm(x, Some(&*self.weight), self.eps)
    }
}

/// Rotary position embedding settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    /// Rotated dimensions per head (usually the head size).
    pub dims: i32,
    /// `true` rotates interleaved pairs (GGUF's layout); `false` rotates halves (Hugging Face).
    pub traditional: bool,
    pub base: f32,
    /// Position scale (1 / linear scaling factor).
    pub scale: f32,
}

impl Rope {
    pub fn apply(&self, x: &Array, offset: usize) -> Result<Array> {
        fast::rope(
            x,
            self.dims,
            self.traditional,
            self.base,
            self.scale,
            offset as i32,
            None,
        )
    }
}

/// Multi-head attention with grouped key/value heads and a KV cache.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Attention {
    #[param]
    pub q_proj: Linear,
    #[param]
    pub k_proj: Linear,
    #[param]
    pub v_proj: Linear,
    #[param]
    pub o_proj: Linear,
    pub n_heads: i32,
    pub n_kv_heads: i32,
    pub head_dim: i32,
    pub rope: Rope,
}

impl Attention {
    /// Attends `x` (`[B, L, D]`) to itself and to what `cache` holds, then appends to `cache`.
    pub fn forward(&self, x: &Array, cache: &mut KvCache) -> Result<Array> {
        let (b, l) = (x.shape()[0], x.shape()[1]);
        let heads = |y: Array, n: i32| -> Result<Array> {
            y.reshape(&[b, l, n, self.head_dim])?
                .transpose_axes(&[0, 2, 1, 3])
        };
        let q = heads(self.q_proj.forward(x)?, self.n_heads)?;
        let k = heads(self.k_proj.forward(x)?, self.n_kv_heads)?;
        let v = heads(self.v_proj.forward(x)?, self.n_kv_heads)?;
        let offset = cache.offset();
        let q = self.rope.apply(&q, offset)?;
        let k = self.rope.apply(&k, offset)?;
        let (k, v) = cache.update_and_fetch(&k, &v)?;
        let scale = (self.head_dim as f32).powf(-0.5);
        // "causal" aligns the mask to the end of the keys, so cached positions stay visible.
        let mask = (l > 1).then_some(ScaledDotProductAttentionMask::Causal);
        let out = fast::scaled_dot_product_attention(&q, &k, &v, scale, mask, None)?;
        let out = out.transpose_axes(&[0, 2, 1, 3])?.reshape(&[b, l, -1])?;
        self.o_proj.forward(&out)
    }
}

/// The gated feed-forward block: `down(act(gate(x)) * up(x))`.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Mlp {
    #[param]
    pub gate_proj: Linear,
    #[param]
    pub up_proj: Linear,
    #[param]
    pub down_proj: Linear,
}

impl Mlp {
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let gate = mlx_rs::nn::silu(self.gate_proj.forward(x)?)?;
        self.down_proj
            .forward(&gate.multiply(self.up_proj.forward(x)?)?)
    }
}
