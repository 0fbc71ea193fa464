//! The decoder-only transformer that every supported architecture is.
//!
//! Token ids → embedding (optionally scaled, plus learned position embeddings) → `n` blocks →
//! norm → LM head (its own matrix, or the embedding table when tied; optionally soft-capped).
//! A block is pre-norm attention and a feed-forward part (a gated or plain MLP, or a mixture
//! of experts) with residuals; "sandwich" blocks (Gemma) also normalize each sub-layer's
//! output. How a checkpoint lays these out is a [`Layout`], one per model file; whether a
//! projection is dense or quantized is the layer's business.

use mlx_rs::error::Exception;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::ops::tanh;
use mlx_rs::Array;

use mlx_rs::module::ModuleParameters;

use super::args::ModelArgs;
use super::checkpoint::checkpointed;
use super::layers::{Activation, Attention, Linear, Mlp, Norm, NormKind};
use super::moe::{Ffn, SparseMoe, SwitchGlu};
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
    /// A plain MLP, `down(act(up(x)))`, without a gate (GPT-2).
    pub gated: bool,
    /// `self_attn.q_norm` / `k_norm` over each head.
    pub qk_norm: bool,
    /// Norms after attention and MLP too (`pre_feedforward_layernorm`, …).
    pub sandwich_norms: bool,
    /// Norm weights are stored minus this (Gemma stores `w - 1`).
    pub norm_offset: f32,
    pub norm: NormKind,
    /// Biases on every projection (GPT-2); otherwise only on queries, keys and values, where
    /// `ModelArgs::attention_bias` says.
    pub all_biases: bool,
    /// Learned absolute positions (`model.embed_positions`) added to the embeddings, and no
    /// RoPE (GPT-2).
    pub learned_positions: bool,
    pub act: Activation,
    /// Name fragments of the architecture's checkpoints and the decoder's names for them,
    /// `(checkpoint, decoder)`: tensors are renamed on the way in, adapters and converted
    /// folders on the way out.
    pub renames: &'static [(&'static str, &'static str)],
}

impl Layout {
    pub const LLAMA: Layout = Layout {
        fused_qkv: false,
        fused_gate_up: false,
        gated: true,
        qk_norm: false,
        sandwich_norms: false,
        norm_offset: 0.0,
        norm: NormKind::Rms,
        all_biases: false,
        learned_positions: false,
        act: Activation::Silu,
        renames: &[],
    };

    /// `name` as the decoder calls it (`to_decoder`) or as checkpoints do.
    pub fn rename(&self, name: &str, to_decoder: bool) -> String {
        let mut name = name.to_string();
        for (checkpoint, decoder) in self.renames {
            let (from, to) = if to_decoder {
                (checkpoint, decoder)
            } else {
                (decoder, checkpoint)
            };
            if name.contains(from) {
                name = name.replacen(from, to, 1);
            }
        }
        name
    }
}

/// One transformer block.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Block {
    #[param]
    pub self_attn: Attention,
    #[param]
    pub mlp: Ffn,
    #[param]
    pub input_layernorm: Norm,
    /// Before the MLP (Llama), or on the attention output (sandwich blocks).
    #[param]
    pub post_attention_layernorm: Norm,
    #[param]
    pub pre_feedforward_layernorm: Option<Norm>,
    #[param]
    pub post_feedforward_layernorm: Option<Norm>,
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
    /// Learned absolute position embeddings (GPT-2).
    #[param]
    pub embed_positions: Option<Linear>,
    #[param]
    pub layers: Vec<Block>,
    #[param]
    pub norm: Norm,
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
    /// Builds the model from weights named as the decoder names them (Hugging Face's Llama
    /// names; see [`Layout::renames`]).
    pub fn new(args: &ModelArgs, layout: Layout, w: &mut Weights) -> Result<Decoder> {
        let layers = (0..args.num_hidden_layers as usize)
            .map(|i| block(args, &layout, w, i))
            .collect::<Result<Vec<_>>>()?;
        let lm_head = if args.tie_word_embeddings {
            None
        } else {
            Some(w.linear("lm_head", false)?)
        };
        Ok(Decoder {
            model: DecoderModel {
                embed_tokens: w.linear("model.embed_tokens", false)?,
                embed_positions: layout
                    .learned_positions
                    .then(|| w.linear("model.embed_positions", false))
                    .transpose()?,
                layers,
                norm: norm(args, &layout, w, "model.norm")?,
            },
            lm_head,
            embed_scale: args.embed_scale,
            final_softcap: args.final_logit_softcapping,
            grad_checkpoint: false,
        })
    }

    /// Final hidden states `[B, L, hidden]` for token ids `[B, L]`, extending `caches`.
    pub fn hidden(&self, ids: &Array, caches: &mut [KvCache]) -> Result<Array, Exception> {
        let from = caches.first().map_or(0, KvCache::offset);
        let mut h = self.embed(ids, from)?;
        for (block, cache) in self.model.layers.iter().zip(caches.iter_mut()) {
            h = if self.grad_checkpoint {
                block.checkpointed(&h)?
            } else {
                block.forward(&h, cache)?
            };
        }
        self.model.norm.forward(&h)
    }

    /// Hidden states `[B, L, hidden]` after the first `n` blocks for token ids `[B, L]` seen
    /// alone (nothing cached): what a sequence looks like part-way through the model.
    pub fn hidden_after(&self, ids: &Array, n: usize) -> Result<Array, Exception> {
        let mut h = self.embed(ids, 0)?;
        for block in self.model.layers.iter().take(n) {
            h = block.forward(&h, &mut KvCache::discarding())?;
        }
        Ok(h)
    }

    /// The input of the first block: token embeddings (scaled, plus learned positions from
    /// position `from`).
    fn embed(&self, ids: &Array, from: usize) -> Result<Array, Exception> {
        let mut h = self.model.embed_tokens.rows(ids)?;
        if let Some(scale) = self.embed_scale {
            h = h.multiply(Array::from_f32(scale).as_dtype(h.dtype())?)?;
        }
        if let Some(positions) = &self.model.embed_positions {
            let from = from as i32;
            let n = ids.shape()[1];
            let at = Array::from_iter(from..from + n, &[n]);
            h = h.add(positions.rows(&at)?)?;
        }
        Ok(h)
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

/// The norm `name` of the layout's kind.
fn norm(args: &ModelArgs, layout: &Layout, w: &mut Weights, name: &str) -> Result<Norm> {
    w.norm(name, layout.norm, args.rms_norm_eps, layout.norm_offset)
}

/// The norm `name` if the layout has it (`present`).
fn norm_if(
    present: bool,
    args: &ModelArgs,
    layout: &Layout,
    w: &mut Weights,
    name: &str,
) -> Result<Option<Norm>> {
    present.then(|| norm(args, layout, w, name)).transpose()
}

/// Block `i`: attention, feed-forward part and norms.
fn block(args: &ModelArgs, layout: &Layout, w: &mut Weights, i: usize) -> Result<Block> {
    let p = format!("model.layers.{i}");
    let sandwich = |w: &mut Weights, name: &str| {
        norm_if(
            layout.sandwich_norms,
            args,
            layout,
            w,
            &format!("{p}.{name}"),
        )
    };
    Ok(Block {
        self_attn: attention(args, layout, w, i)?,
        mlp: ffn(args, layout, w, i)?,
        input_layernorm: norm(args, layout, w, &format!("{p}.input_layernorm"))?,
        post_attention_layernorm: norm(args, layout, w, &format!("{p}.post_attention_layernorm"))?,
        pre_feedforward_layernorm: sandwich(w, "pre_feedforward_layernorm")?,
        post_feedforward_layernorm: sandwich(w, "post_feedforward_layernorm")?,
    })
}

fn attention(args: &ModelArgs, layout: &Layout, w: &mut Weights, i: usize) -> Result<Attention> {
    let a = format!("model.layers.{i}.self_attn");
    let qkv_bias = args.attention_bias || layout.all_biases;
    let sep = |w: &mut Weights, name: &str| {
        (!layout.fused_qkv)
            .then(|| w.linear(&format!("{a}.{name}"), qkv_bias))
            .transpose()
    };
    let qk_norm = |w: &mut Weights, name: &str| {
        norm_if(layout.qk_norm, args, layout, w, &format!("{a}.{name}"))
    };
    Ok(Attention {
        q_proj: sep(w, "q_proj")?,
        k_proj: sep(w, "k_proj")?,
        v_proj: sep(w, "v_proj")?,
        qkv_proj: layout
            .fused_qkv
            .then(|| w.linear(&format!("{a}.qkv_proj"), qkv_bias))
            .transpose()?,
        o_proj: w.linear(&format!("{a}.o_proj"), layout.all_biases)?,
        q_norm: qk_norm(w, "q_norm")?,
        k_norm: qk_norm(w, "k_norm")?,
        n_heads: args.num_attention_heads,
        n_kv_heads: args.num_key_value_heads,
        head_dim: args.head_dim,
        rope: (!layout.learned_positions).then(|| args.layer_rope(i)),
        scale: args
            .query_pre_attn_scalar
            .unwrap_or(args.head_dim as f32)
            .powf(-0.5),
        softcap: args.attn_logit_softcapping,
        window: args.layer_window(i),
    })
}

/// The feed-forward part of block `i`: the experts if the layer has them, else the MLP.
fn ffn(args: &ModelArgs, layout: &Layout, w: &mut Weights, i: usize) -> Result<Ffn> {
    let m = format!("model.layers.{i}.mlp");
    if let Some(moe) = args.layer_experts(i) {
        let s = format!("{m}.switch_mlp");
        return Ok(Ffn::Sparse(SparseMoe {
            gate: w.linear(&format!("{m}.gate"), false)?,
            switch_mlp: SwitchGlu {
                gate_proj: w.linear(&format!("{s}.gate_proj"), false)?,
                up_proj: w.linear(&format!("{s}.up_proj"), false)?,
                down_proj: w.linear(&format!("{s}.down_proj"), false)?,
            },
            top_k: moe.experts_per_token,
            routing: moe.routing,
        }));
    }
    let bias = layout.all_biases;
    let separate = |w: &mut Weights, name: &str, present: bool| {
        present
            .then(|| w.linear(&format!("{m}.{name}"), bias))
            .transpose()
    };
    Ok(Ffn::Dense(Mlp {
        gate_proj: separate(w, "gate_proj", layout.gated && !layout.fused_gate_up)?,
        up_proj: separate(w, "up_proj", !layout.fused_gate_up)?,
        gate_up_proj: separate(w, "gate_up_proj", layout.fused_gate_up)?,
        down_proj: w.linear(&format!("{m}.down_proj"), bias)?,
        act: layout.act,
    }))
}
