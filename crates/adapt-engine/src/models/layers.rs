//! Building blocks shared by the model files: [`Linear`] (dense or quantized — one layer type,
//! so model code never knows which), [`Norm`] (RMS or layer norm), [`Rope`], [`Attention`] and
//! the [`Mlp`] (gated or plain). Parameter names follow mlx-lm's (`q_proj.weight`,
//! `q_proj.scales`, …). What differs between architectures (fused projections, q/k norms,
//! soft-capping, sliding windows, the activation) is a field of these layers, set by the model
//! file; mixture-of-experts feed-forward blocks are in `moe.rs`.

use mlx_rs::error::Exception;
use mlx_rs::fast::{self, ScaledDotProductAttentionMask};
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;
use mlx_rs::ops::indexing::IndexOp;
use mlx_rs::ops::{dequantize, quantized_matmul, softmax_axis, split_at_indices, tanh};
use mlx_rs::{Array, Dtype};

use super::adapter::{Adapter, Base};
use crate::cache::KvCache;

type Result<T> = std::result::Result<T, Exception>;

/// Group-wise affine quantization of a weight, as MLX stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QuantSpec {
    pub group_size: i32,
    pub bits: i32,
}

impl QuantSpec {
    /// Whether MLX's affine quantization takes these settings.
    pub fn is_supported(&self) -> bool {
        matches!(self.bits, 2..=8) && matches!(self.group_size, 32 | 64 | 128)
    }
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
    /// A low-rank adapter over the layer (LoRA or DoRA), when one is attached.
    #[param]
    pub adapter: Option<Adapter>,
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
            adapter: None,
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
            adapter: None,
        }
    }

    /// Applies the layer (and its adapter, if any) to `x` (`[..., in]`).
    pub fn forward(&self, x: &Array) -> Result<Array> {
        match &self.adapter {
            Some(adapter) => adapter.forward(self, x),
            None => self.base_forward(x),
        }
    }

    /// The layer without its adapter.
    pub fn base_forward(&self, x: &Array) -> Result<Array> {
        let y = match (&self.quant, self.scales.as_ref()) {
            // f32 only: in half precision the quantized kernel rounds differently.
            (Some(_), Some(_)) if x.dtype() == Dtype::Float32 && dequantize_first() => {
                x.matmul(self.dense_weight()?.as_dtype(Dtype::Float32)?.t())?
            }
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

impl Base for Linear {
    fn base_forward(&self, x: &Array) -> Result<Array> {
        Linear::base_forward(self, x)
    }

    fn dense_weight(&self) -> Result<Array> {
        Linear::dense_weight(self)
    }

    fn bias(&self) -> Option<&Array> {
        self.bias.value.as_ref()
    }
}

/// Whether quantized layers multiply f32 inputs by a dequantized copy of their weight: MLX's
/// CPU backend does that many times faster than with its quantized kernels (forward and
/// backward), while GPUs run the quantized kernels fast.
pub(crate) fn dequantize_first() -> bool {
    static CPU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CPU.get_or_init(|| !crate::device::Backend::detect().is_gpu())
}

/// How a [`Norm`] normalizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum NormKind {
    /// Root-mean-square normalization (Llama and most others).
    Rms,
    /// Mean-and-variance layer normalization (GPT-2), usually with a bias.
    Layer,
}

/// A normalization over the last axis with a learned scale (and, for layer norms, a bias).
#[derive(Debug, Clone, ModuleParameters)]
pub struct Norm {
    #[param]
    pub weight: Param<Array>,
    #[param]
    pub bias: Param<Option<Array>>,
    pub eps: f32,
    pub kind: NormKind,
}

impl Norm {
    /// An RMS norm.
    pub fn rms(weight: Array, eps: f32) -> Norm {
        Norm {
            weight: Param::new(weight),
            bias: Param::new(None),
            eps,
            kind: NormKind::Rms,
        }
    }

    /// A layer norm.
    pub fn layer(weight: Array, bias: Option<Array>, eps: f32) -> Norm {
        Norm {
            weight: Param::new(weight),
            bias: Param::new(bias),
            eps,
            kind: NormKind::Layer,
        }
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        match self.kind {
            NormKind::Rms => fast::rms_norm(x, Some(&*self.weight), self.eps),
            NormKind::Layer => {
                fast::layer_norm(x, Some(&*self.weight), self.bias.as_ref(), self.eps)
            }
        }
    }
}

/// Rotary position embedding.
#[derive(Debug, Clone)]
pub struct Rope {
    /// Rotated dimensions per head (the head size, or less for partial rotary).
    pub dims: i32,
    /// `true` rotates interleaved pairs (GGUF's layout); `false` rotates halves (Hugging Face).
    pub traditional: bool,
    pub base: f32,
    /// Position scale (1 / linear scaling factor).
    pub scale: f32,
    /// Per-pair frequencies replacing `base` (Llama 3, YaRN and LongRoPE scaling).
    pub freqs: Option<Array>,
    /// Factor on the rotated part of queries and keys (YaRN / LongRoPE attention scaling).
    pub mscale: f32,
}

impl Rope {
    /// Plain RoPE over `dims` dimensions with frequency base `base`.
    pub fn plain(dims: i32, traditional: bool, base: f32) -> Rope {
        Rope {
            dims,
            traditional,
            base,
            scale: 1.0,
            freqs: None,
            mscale: 1.0,
        }
    }

    pub fn apply(&self, x: &Array, offset: usize) -> Result<Array> {
        let x = if self.mscale == 1.0 {
            x.clone()
        } else if self.dims == x.shape()[x.ndim() - 1] {
            x.multiply(Array::from_f32(self.mscale))?
        } else {
            let parts = split_at_indices(x, &[self.dims], -1)?;
            let rotated = parts[0].multiply(Array::from_f32(self.mscale))?;
            mlx_rs::ops::concatenate(&[rotated, parts[1].clone()], -1)?
        };
        let base = self.freqs.is_none().then_some(self.base);
        fast::rope(
            &x,
            self.dims,
            self.traditional,
            base,
            self.scale,
            offset as i32,
            self.freqs.as_ref(),
        )
    }
}

/// Multi-head attention with grouped key/value heads and a KV cache.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Attention {
    /// Separate query, key and value projections (absent when fused).
    #[param]
    pub q_proj: Option<Linear>,
    #[param]
    pub k_proj: Option<Linear>,
    #[param]
    pub v_proj: Option<Linear>,
    /// One projection whose output is queries, keys and values in that order (Phi-3).
    #[param]
    pub qkv_proj: Option<Linear>,
    #[param]
    pub o_proj: Linear,
    /// Per-head RMS norms of queries and keys before RoPE (Qwen3, Gemma 3).
    #[param]
    pub q_norm: Option<Norm>,
    #[param]
    pub k_norm: Option<Norm>,
    pub n_heads: i32,
    pub n_kv_heads: i32,
    pub head_dim: i32,
    /// Rotary position embedding (`None`: positions are learned embeddings added to the input).
    pub rope: Option<Rope>,
    /// Factor on the scores (usually `head_dim^-0.5`).
    pub scale: f32,
    /// Scores become `cap * tanh(scores / cap)` (Gemma 2).
    pub softcap: Option<f32>,
    /// Each position sees only this many positions, itself included (sliding-window layers).
    pub window: Option<usize>,
}

impl Attention {
    /// Attends `x` (`[B, L, D]`) to itself and to what `cache` holds, then appends to `cache`.
    pub fn forward(&self, x: &Array, cache: &mut KvCache) -> Result<Array> {
        let (b, l) = (x.shape()[0], x.shape()[1]);
        let (q, k, v) = self.project(x)?;
        let heads = |y: Array, n: i32, norm: &Option<Norm>| -> Result<Array> {
            let y = y.reshape(&[b, l, n, self.head_dim])?;
            let y = match norm {
                Some(norm) => norm.forward(&y)?,
                None => y,
            };
            y.transpose_axes(&[0, 2, 1, 3])
        };
        let q = heads(q, self.n_heads, &self.q_norm)?;
        let k = heads(k, self.n_kv_heads, &self.k_norm)?;
        let v = heads(v, self.n_kv_heads, &None)?;
        let offset = cache.offset();
        let (q, k) = match &self.rope {
            Some(rope) => (rope.apply(&q, offset)?, rope.apply(&k, offset)?),
            None => (q, k),
        };
        let (mut k, mut v) = cache.update_and_fetch(&k, &v)?;
        let total = offset + l as usize;
        let mut mask = None;
        if let Some(window) = self.window.filter(|w| total > *w) {
            if l == 1 {
                // One query sees the last `window` keys: drop the older ones.
                let from = (total - window) as i32;
                k = k.index((.., .., from.., ..));
                v = v.index((.., .., from.., ..));
            } else {
                mask = Some(window_mask(offset, l as usize, window)?);
            }
        }
        let out = match self.softcap {
            Some(cap) => self.capped_attention(&q, &k, &v, cap, mask.as_ref(), l > 1)?,
            None => {
                let mask = match &mask {
                    Some(m) => Some(ScaledDotProductAttentionMask::Array(m)),
                    // "causal" aligns the mask to the end of the keys, so cached positions
                    // stay visible.
                    None => (l > 1).then_some(ScaledDotProductAttentionMask::Causal),
                };
                fast::scaled_dot_product_attention(&q, &k, &v, self.scale, mask, None)?
            }
        };
        let out = out.transpose_axes(&[0, 2, 1, 3])?.reshape(&[b, l, -1])?;
        self.o_proj.forward(&out)
    }

    /// The projections present, named as in checkpoints (`q_proj`, …).
    pub fn linears_mut(&mut self) -> Vec<(&'static str, &mut Linear)> {
        let named = [
            ("q_proj", self.q_proj.as_mut()),
            ("k_proj", self.k_proj.as_mut()),
            ("v_proj", self.v_proj.as_mut()),
            ("qkv_proj", self.qkv_proj.as_mut()),
            ("o_proj", Some(&mut self.o_proj)),
        ];
        named
            .into_iter()
            .filter_map(|(n, l)| Some((n, l?)))
            .collect()
    }

    /// Queries, keys and values `[B, L, heads * head_dim]`.
    fn project(&self, x: &Array) -> Result<(Array, Array, Array)> {
        if let Some(qkv) = &self.qkv_proj {
            let q = self.n_heads * self.head_dim;
            let kv = self.n_kv_heads * self.head_dim;
            let mut parts = split_at_indices(qkv.forward(x)?, &[q, q + kv], -1)?.into_iter();
            let mut next = || parts.next().ok_or_else(|| Exception::custom("qkv split"));
            return Ok((next()?, next()?, next()?));
        }
        let (Some(q), Some(k), Some(v)) = (&self.q_proj, &self.k_proj, &self.v_proj) else {
            return Err(Exception::custom("attention has no projections"));
        };
        Ok((q.forward(x)?, k.forward(x)?, v.forward(x)?))
    }

    /// Attention with soft-capped scores, computed step by step (the fused kernel cannot cap).
    fn capped_attention(
        &self,
        q: &Array,
        k: &Array,
        v: &Array,
        cap: f32,
        mask: Option<&Array>,
        causal: bool,
    ) -> Result<Array> {
        let (b, l, d) = (q.shape()[0], q.shape()[2], self.head_dim);
        let repeats = self.n_heads / self.n_kv_heads;
        let q = q.multiply(Array::from_f32(self.scale))?.reshape(&[
            b,
            self.n_kv_heads,
            repeats,
            l,
            d,
        ])?;
        let (k, v) = (k.expand_dims(2)?, v.expand_dims(2)?);
        let scores = q.matmul(k.swap_axes(-1, -2)?)?;
        let cap_a = Array::from_f32(cap);
        let scores = tanh(scores.divide(&cap_a)?)?.multiply(&cap_a)?;
        let keys = k.shape()[3] as usize;
        let mask = match mask {
            Some(m) => Some(m.clone()),
            None if causal => Some(window_mask(keys - l as usize, l as usize, usize::MAX)?),
            None => None,
        };
        let scores = match mask {
            Some(m) => {
                let neg = Array::from_f32(f32::MIN).as_dtype(scores.dtype())?;
                mlx_rs::ops::select(&m, &scores, &neg)?
            }
            None => scores,
        };
        let probs = softmax_axis(&scores, -1, true)?;
        probs.matmul(&v)?.reshape(&[b, self.n_heads, l, d])
    }
}

/// Boolean mask `[L, offset + L]`: query `i` (at position `offset + i`) sees key `j` when
/// `j <= offset + i` and `offset + i - j < window`.
fn window_mask(offset: usize, l: usize, window: usize) -> Result<Array> {
    let queries = Array::from_iter((offset..offset + l).map(|p| p as i32), &[l as i32, 1]);
    let n = offset + l;
    let keys = Array::from_iter((0..n).map(|p| p as i32), &[1, n as i32]);
    let causal = queries.ge(&keys)?;
    if window >= n {
        return Ok(causal);
    }
    let near = queries.lt(keys.add(Array::from_int(window as i32))?)?;
    causal.logical_and(&near)
}

/// The activation of a gated MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Activation {
    Silu,
    /// GELU, tanh approximation (Gemma).
    GeluTanh,
}

/// The feed-forward block: gated, `down(act(gate(x)) * up(x))`, or plain (no gate, GPT-2),
/// `down(act(up(x)))`.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Mlp {
    #[param]
    pub gate_proj: Option<Linear>,
    #[param]
    pub up_proj: Option<Linear>,
    /// Gate and up projections in one, gate first (Phi-3).
    #[param]
    pub gate_up_proj: Option<Linear>,
    #[param]
    pub down_proj: Linear,
    pub act: Activation,
}

impl Mlp {
    /// The projections present, named as in checkpoints (`gate_proj`, …).
    pub fn linears_mut(&mut self) -> Vec<(&'static str, &mut Linear)> {
        let named = [
            ("gate_proj", self.gate_proj.as_mut()),
            ("up_proj", self.up_proj.as_mut()),
            ("gate_up_proj", self.gate_up_proj.as_mut()),
            ("down_proj", Some(&mut self.down_proj)),
        ];
        named
            .into_iter()
            .filter_map(|(n, l)| Some((n, l?)))
            .collect()
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let (gate, up) = match (&self.gate_up_proj, &self.gate_proj, &self.up_proj) {
            (Some(both), _, _) => {
                let mut halves = both.forward(x)?.split_equal(2, -1)?.into_iter();
                match (halves.next(), halves.next()) {
                    (Some(g), Some(u)) => (g, u),
                    _ => return Err(Exception::custom("gate_up split")),
                }
            }
            (None, Some(g), Some(u)) => (g.forward(x)?, u.forward(x)?),
            (None, None, Some(u)) => {
                let hidden = self.act.apply(&u.forward(x)?)?;
                return self.down_proj.forward(&hidden);
            }
            _ => return Err(Exception::custom("MLP has no gate/up projections")),
        };
        let hidden = match self.act {
            Activation::Silu => swiglu(&gate, &up)?,
            act => act.apply(&gate)?.multiply(up)?,
        };
        self.down_proj.forward(&hidden)
    }
}

impl Activation {
    /// The activation of `x`.
    pub fn apply(self, x: &Array) -> Result<Array> {
        match self {
            Activation::Silu => x.multiply(mlx_rs::ops::sigmoid(x)?),
            Activation::GeluTanh => mlx_rs::nn::gelu_approximate(x),
        }
    }
}

/// `silu(gate) * up` as one compiled (fused) element-wise kernel: one pass over the MLP's
/// widest activations instead of three. The function is compiled once per thread (MLX keys
/// its cache of compiled graphs by the compiled function's identity, so compiling it at every
/// call would trace and compile it again every time).
fn swiglu(gate: &Array, up: &Array) -> Result<Array> {
    type Fused = Box<dyn for<'a> FnMut((&'a Array, &'a Array)) -> Result<Array>>;
    thread_local! {
        static SWIGLU: std::cell::RefCell<Fused> = std::cell::RefCell::new(Box::new(
            mlx_rs::transforms::compile::compile(
                |(g, u): (&Array, &Array)| -> Result<Array> {
                    g.multiply(mlx_rs::ops::sigmoid(g)?)?.multiply(u)
                },
                true,
            ),
        ));
    }
    SWIGLU.with(|f| (f.borrow_mut())((gate, up)))
}
