//! The Llama-family decoder: Llama 2 / 3, Mistral and SmolLM share it.
//!
//! Token ids → embedding → `n` blocks of (RMSNorm → grouped-query attention with RoPE →
//! residual, RMSNorm → SwiGLU MLP → residual) → RMSNorm → LM head (its own matrix, or the
//! embedding table when tied). Whether a projection is dense or quantized is the layer's
//! business, not this file's.

use mlx_rs::error::Exception;
use mlx_rs::macros::ModuleParameters;
use mlx_rs::Array;

use super::layers::{Attention, Linear, Mlp, RmsNorm, Rope};
use super::{ModelArgs, Weights};
use crate::cache::KvCache;
use crate::error::Result;

/// One transformer block.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Block {
    #[param]
    pub self_attn: Attention,
    #[param]
    pub mlp: Mlp,
    #[param]
    pub input_layernorm: RmsNorm,
    #[param]
    pub post_attention_layernorm: RmsNorm,
}

impl Block {
    fn forward(&self, x: &Array, cache: &mut KvCache) -> Result<Array, Exception> {
        let h = x.add(
            self.self_attn
                .forward(&self.input_layernorm.forward(x)?, cache)?,
        )?;
        h.add(
            self.mlp
                .forward(&self.post_attention_layernorm.forward(&h)?)?,
        )
    }
}

/// Embedding, blocks and final norm.
#[derive(Debug, Clone, ModuleParameters)]
pub struct LlamaModel {
    #[param]
    pub embed_tokens: Linear,
    #[param]
    pub layers: Vec<Block>,
    #[param]
    pub norm: RmsNorm,
}

/// The decoder with its LM head.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Llama {
    #[param]
    pub model: LlamaModel,
    /// `None` when the head is tied to the embedding table.
    #[param]
    pub lm_head: Option<Linear>,
}

impl Llama {
    /// Builds the model from weights named as in Hugging Face checkpoints.
    pub fn new(args: &ModelArgs, w: &mut Weights) -> Result<Llama> {
        let rope = Rope {
            dims: args.head_dim,
            traditional: args.rope_traditional,
            base: args.rope_theta,
            scale: args.rope_scale,
        };
        let layers = (0..args.num_hidden_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                Ok(Block {
                    self_attn: Attention {
                        q_proj: w.linear(&format!("{p}.self_attn.q_proj"))?,
                        k_proj: w.linear(&format!("{p}.self_attn.k_proj"))?,
                        v_proj: w.linear(&format!("{p}.self_attn.v_proj"))?,
                        o_proj: w.linear(&format!("{p}.self_attn.o_proj"))?,
                        n_heads: args.num_attention_heads,
                        n_kv_heads: args.num_key_value_heads,
                        head_dim: args.head_dim,
                        rope,
                    },
                    mlp: Mlp {
                        gate_proj: w.linear(&format!("{p}.mlp.gate_proj"))?,
                        up_proj: w.linear(&format!("{p}.mlp.up_proj"))?,
                        down_proj: w.linear(&format!("{p}.mlp.down_proj"))?,
                    },
                    input_layernorm: w.norm(&format!("{p}.input_layernorm"), args.rms_norm_eps)?,
                    post_attention_layernorm: w
                        .norm(&format!("{p}.post_attention_layernorm"), args.rms_norm_eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lm_head = if args.tie_word_embeddings {
            None
        } else {
            Some(w.linear("lm_head")?)
        };
        Ok(Llama {
            model: LlamaModel {
                embed_tokens: w.linear("model.embed_tokens")?,
                layers,
                norm: w.norm("model.norm", args.rms_norm_eps)?,
            },
            lm_head,
        })
    }

    /// Final hidden states `[B, L, hidden]` for token ids `[B, L]`, extending `caches`.
    pub fn hidden(&self, ids: &Array, caches: &mut [KvCache]) -> Result<Array, Exception> {
        let mut h = self.model.embed_tokens.rows(ids)?;
        for (block, cache) in self.model.layers.iter().zip(caches.iter_mut()) {
            h = block.forward(&h, cache)?;
        }
        self.model.norm.forward(&h)
    }

    /// Logits for final hidden states.
    pub fn head(&self, h: &Array) -> Result<Array, Exception> {
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => self.model.embed_tokens.forward(h),
        }
    }
}
