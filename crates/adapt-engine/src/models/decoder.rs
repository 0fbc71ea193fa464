//! The decoder-only transformer that every supported architecture is.
//!
//! Token ids → embedding (optionally scaled) → `n` blocks → RMSNorm → LM head (its own matrix,
//! or the embedding table when tied; optionally soft-capped). A block is pre-norm attention
//! and MLP with residuals; "sandwich" blocks (Gemma) also normalize each sub-layer's output.
//! How a checkpoint lays these out is a [`Layout`], one per model file; whether a projection is
//! dense or quantized is the layer's business.

use mlx_rs::error::Exception;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::ops::tanh;
use mlx_rs::Array;

use mlx_rs::module::ModuleParameters;

use super::args::ModelArgs;
use super::checkpoint::checkpointed;
use super::layers::{Activation, Attention, Linear, Mlp, RmsNorm};
use super::weights::Weights;
use crate::cache::KvCache;
use crate::error::Result;

/// How an architecture's checkpoint differs from Llama's.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// `self_attn.qkv_proj` instead of `q_proj`, `k_proj`, `v_proj`.
    pub fused_qkv: bool,
    /// `mlp.gate_up_proj` instead of `gate_proj`, `up_proj`.
    pub fused_gate_up: bool,
    /// `self_attn.q_norm` / `k_norm` over each head.
    pub qk_norm: bool,
    /// Norms after attention and MLP too (`pre_feedforward_layernorm`, …).
    pub sandwich_norms: bool,
    /// Norm weights are stored minus this (Gemma stores `w - 1`).
    pub norm_offset: f32,
    pub act: Activation,
}

impl Layout {
    pub const LLAMA: Layout = Layout {
        fused_qkv: false,
        fused_gate_up: false,
        qk_norm: false,
        sandwich_norms: false,
        norm_offset: 0.0,
        act: Activation::Silu,
    };
}

/// One transformer block.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Block {
    #[param]
    pub self_attn: Attention,
    #[param]
    pub mlp: Mlp,
    #[param]
    pub input_layernorm: RmsNorm,
    /// Before the MLP (Llama), or on the attention output (sandwich blocks).
    #[param]
    pub post_attention_layernorm: RmsNorm,
    #[param]
    pub pre_feedforward_layernorm: Option<RmsNorm>,
    #[param]
    pub post_feedforward_layernorm: Option<RmsNorm>,
}

impl Block {
    /// [`Block::forward`] over a whole sequence (no cache) under gradient checkpointing: the
    /// input and the trainable parameters go in as inputs, so their gradients flow.
    fn checkpointed(&self, x: &Array) -> Result<Array, Exception> {
        let trainable = self.trainable_parameters().flatten();
        let names: Vec<std::rc::Rc<str>> = trainable.keys().cloned().collect();
        let mut inputs = vec![x.clone()];
        inputs.extend(trainable.values().map(|a| (*a).clone()));
        let template = self.clone();
        let f = move |a: &[Array]| -> Result<Vec<Array>, Exception> {
            let mut block = template.clone();
            block.update_flattened(names.iter().cloned().zip(a[1..].iter().cloned()).collect());
            Ok(vec![block.forward(&a[0], &mut KvCache::discarding())?])
        };
        let mut out = checkpointed(f, &inputs)?;
        Ok(out.remove(0))
    }

    /// Every projection of the block, named relative to it (`self_attn.q_proj`, …).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let attn = self.self_attn.linears_mut().into_iter();
        let attn = attn.map(|(n, l)| (format!("self_attn.{n}"), l));
        let mlp = self.mlp.linears_mut().into_iter();
        attn.chain(mlp.map(|(n, l)| (format!("mlp.{n}"), l)))
            .collect()
    }

    fn forward(&self, x: &Array, cache: &mut KvCache) -> Result<Array, Exception> {
        let attn = self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, cache)?;
        match (
            &self.pre_feedforward_layernorm,
            &self.post_feedforward_layernorm,
        ) {
            (Some(pre), Some(post)) => {
                let h = x.add(self.post_attention_layernorm.forward(&attn)?)?;
                h.add(post.forward(&self.mlp.forward(&pre.forward(&h)?)?)?)
            }
            _ => {
                let h = x.add(attn)?;
                h.add(
                    self.mlp
                        .forward(&self.post_attention_layernorm.forward(&h)?)?,
                )
            }
        }
    }
}

/// Embedding, blocks and final norm.
#[derive(Debug, Clone, ModuleParameters)]
pub struct DecoderModel {
    #[param]
    pub embed_tokens: Linear,
    #[param]
    pub layers: Vec<Block>,
    #[param]
    pub norm: RmsNorm,
}

/// The decoder with its LM head.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Decoder {
    #[param]
    pub model: DecoderModel,
    /// `None` when the head is tied to the embedding table.
    #[param]
    pub lm_head: Option<Linear>,
    pub embed_scale: Option<f32>,
    pub final_softcap: Option<f32>,
    /// Recompute each block's activations in the backward pass instead of keeping them
    /// (training with less memory, for more compute).
    pub grad_checkpoint: bool,
}

impl Decoder {
    /// Builds the model from weights named as in Hugging Face checkpoints.
    pub fn new(args: &ModelArgs, layout: Layout, w: &mut Weights) -> Result<Decoder> {
        let eps = args.rms_norm_eps;
        let off = layout.norm_offset;
        let layers = (0..args.num_hidden_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                let a = format!("{p}.self_attn");
                let m = format!("{p}.mlp");
                let window = args.layer_window(i as usize);
                let sep = |w: &mut Weights, name: &str, fused: bool| {
                    (!fused)
                        .then(|| w.linear(&format!("{a}.{name}"), args.attention_bias))
                        .transpose()
                };
                let qk_norm = |w: &mut Weights, name: &str| {
                    layout
                        .qk_norm
                        .then(|| w.norm(&format!("{a}.{name}"), eps, off))
                        .transpose()
                };
                let sandwich = |w: &mut Weights, name: &str| {
                    layout
                        .sandwich_norms
                        .then(|| w.norm(&format!("{p}.{name}"), eps, off))
                        .transpose()
                };
                Ok(Block {
                    self_attn: Attention {
                        q_proj: sep(w, "q_proj", layout.fused_qkv)?,
                        k_proj: sep(w, "k_proj", layout.fused_qkv)?,
                        v_proj: sep(w, "v_proj", layout.fused_qkv)?,
                        qkv_proj: layout
                            .fused_qkv
                            .then(|| w.linear(&format!("{a}.qkv_proj"), args.attention_bias))
                            .transpose()?,
                        o_proj: w.linear(&format!("{a}.o_proj"), false)?,
                        q_norm: qk_norm(w, "q_norm")?,
                        k_norm: qk_norm(w, "k_norm")?,
                        n_heads: args.num_attention_heads,
                        n_kv_heads: args.num_key_value_heads,
                        head_dim: args.head_dim,
                        rope: args.layer_rope(i as usize),
                        scale: args
                            .query_pre_attn_scalar
                            .unwrap_or(args.head_dim as f32)
                            .powf(-0.5),
                        softcap: args.attn_logit_softcapping,
                        window,
                    },
                    mlp: Mlp {
                        gate_proj: (!layout.fused_gate_up)
                            .then(|| w.linear(&format!("{m}.gate_proj"), false))
                            .transpose()?,
                        up_proj: (!layout.fused_gate_up)
                            .then(|| w.linear(&format!("{m}.up_proj"), false))
                            .transpose()?,
                        gate_up_proj: layout
                            .fused_gate_up
                            .then(|| w.linear(&format!("{m}.gate_up_proj"), false))
                            .transpose()?,
                        down_proj: w.linear(&format!("{m}.down_proj"), false)?,
                        act: layout.act,
                    },
                    input_layernorm: w.norm(&format!("{p}.input_layernorm"), eps, off)?,
                    post_attention_layernorm: w.norm(
                        &format!("{p}.post_attention_layernorm"),
                        eps,
                        off,
                    )?,
                    pre_feedforward_layernorm: sandwich(w, "pre_feedforward_layernorm")?,
                    post_feedforward_layernorm: sandwich(w, "post_feedforward_layernorm")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lm_head = if args.tie_word_embeddings {
            None
        } else {
            Some(w.linear("lm_head", false)?)
        };
        Ok(Decoder {
            model: DecoderModel {
                embed_tokens: w.linear("model.embed_tokens", false)?,
                layers,
                norm: w.norm("model.norm", eps, off)?,
            },
            lm_head,
            embed_scale: args.embed_scale,
            final_softcap: args.final_logit_softcapping,
            grad_checkpoint: false,
        })
    }

    /// Final hidden states `[B, L, hidden]` for token ids `[B, L]`, extending `caches`.
    pub fn hidden(&self, ids: &Array, caches: &mut [KvCache]) -> Result<Array, Exception> {
        let mut h = self.model.embed_tokens.rows(ids)?;
        if let Some(scale) = self.embed_scale {
            h = h.multiply(Array::from_f32(scale).as_dtype(h.dtype())?)?;
        }
        for (block, cache) in self.model.layers.iter().zip(caches.iter_mut()) {
            h = if self.grad_checkpoint {
                block.checkpointed(&h)?
            } else {
                block.forward(&h, cache)?
            };
        }
        self.model.norm.forward(&h)
    }

    /// Logits for final hidden states.
    pub fn head(&self, h: &Array) -> Result<Array, Exception> {
        let logits = match &self.lm_head {
            Some(head) => head.forward(h)?,
            None => self.model.embed_tokens.forward(h)?,
        };
        match self.final_softcap {
            Some(cap) => {
                let cap = Array::from_f32(cap);
                tanh(logits.divide(&cap)?)?.multiply(&cap)
            }
            None => Ok(logits),
        }
    }
}
