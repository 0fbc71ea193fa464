//! [`ModelArgs`]: the shape and settings of a decoder-only transformer, read from GGUF
//! metadata or a `config.json`, and what they say about each layer (attention window, RoPE).

use serde::Serialize;

use super::layers::Rope;
use super::rope::RopeScaling;

/// The shape and settings of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelArgs {
    pub architecture: String,
    pub hidden_size: i32,
    pub intermediate_size: i32,
    pub num_hidden_layers: i32,
    pub num_attention_heads: i32,
    pub num_key_value_heads: i32,
    pub head_dim: i32,
    pub vocab_size: i32,
    /// Epsilon of the norms (RMS or layer norms).
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    /// RoPE on interleaved pairs (GGUF weights) rather than halves (Hugging Face weights).
    pub rope_traditional: bool,
    pub rope_scaling: RopeScaling,
    /// Rotated dimensions per head (less than `head_dim` with partial rotary embeddings).
    pub rope_dims: i32,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Biases on the query, key and value projections (Qwen2).
    pub attention_bias: bool,
    /// Factor on the embeddings (Gemma: √hidden).
    pub embed_scale: Option<f32>,
    /// Scores are scaled by this^-0.5 instead of `head_dim`^-0.5 (Gemma).
    pub query_pre_attn_scalar: Option<f32>,
    pub attn_logit_softcapping: Option<f32>,
    pub final_logit_softcapping: Option<f32>,
    /// Window of the sliding-window layers, and which layers slide: every layer but each
    /// `sliding_window_pattern`-th (`None`: all of them).
    pub sliding_window: Option<usize>,
    pub sliding_window_pattern: Option<usize>,
    /// RoPE base of the sliding-window layers (Gemma 3), which also skip RoPE scaling.
    pub rope_local_base_freq: Option<f32>,
    /// Query and key rows are in GGUF's interleaved order rather than Hugging Face's (the
    /// model was read from a GGUF file).
    pub qk_permuted: bool,
    /// Mixture-of-experts feed-forward blocks (Mixtral, Qwen3-MoE).
    pub moe: Option<MoeArgs>,
}

/// How a mixture-of-experts block routes each token to its experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Routing {
    /// The `k` largest router logits, then a softmax over them (Mixtral).
    TopKSoftmax,
    /// A softmax over every expert, then the `k` largest probabilities, renormalized to sum
    /// to one when `normalize` (Qwen3-MoE).
    SoftmaxTopK { normalize: bool },
}

/// The experts of a mixture-of-experts model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoeArgs {
    pub num_experts: i32,
    /// Experts each token goes to.
    pub experts_per_token: i32,
    /// Hidden width of each expert's MLP.
    pub intermediate_size: i32,
    pub routing: Routing,
    /// Every `sparse_step`-th layer is sparse (1: all of them) …
    pub sparse_step: i32,
    /// … except these, which keep a dense MLP of `ModelArgs::intermediate_size`.
    pub dense_layers: Vec<i32>,
}

impl Default for ModelArgs {
    fn default() -> ModelArgs {
        ModelArgs {
            architecture: "llama".into(),
            hidden_size: 0,
            intermediate_size: 0,
            num_hidden_layers: 0,
            num_attention_heads: 1,
            num_key_value_heads: 1,
            head_dim: 0,
            vocab_size: 0,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_traditional: false,
            rope_scaling: RopeScaling::None,
            rope_dims: 0,
            max_position_embeddings: 4096,
            tie_word_embeddings: false,
            attention_bias: false,
            embed_scale: None,
            query_pre_attn_scalar: None,
            attn_logit_softcapping: None,
            final_logit_softcapping: None,
            sliding_window: None,
            sliding_window_pattern: None,
            rope_local_base_freq: None,
            qk_permuted: false,
            moe: None,
        }
    }
}

impl ModelArgs {
    /// The attention window of layer `i`, if it is a sliding-window layer.
    pub fn layer_window(&self, i: usize) -> Option<usize> {
        let window = self.sliding_window?;
        match self.sliding_window_pattern {
            Some(p) if p > 0 && (i + 1).is_multiple_of(p) => None,
            _ => Some(window),
        }
    }

    /// The experts of layer `i`, if its feed-forward block is a mixture of experts.
    pub fn layer_experts(&self, i: usize) -> Option<&MoeArgs> {
        let moe = self.moe.as_ref()?;
        let i = i as i32;
        let sparse = moe.num_experts > 0
            && (i + 1) % moe.sparse_step.max(1) == 0
            && !moe.dense_layers.contains(&i);
        sparse.then_some(moe)
    }

    /// Feed-forward activations per token and layer: the MLP's width, or the experts' widths
    /// a token goes through.
    pub fn ffn_width_per_token(&self) -> i32 {
        match &self.moe {
            Some(m) => m.intermediate_size * m.experts_per_token,
            None => self.intermediate_size,
        }
    }

    /// The rotary embedding of layer `i`.
    pub fn layer_rope(&self, i: usize) -> Rope {
        let dims = if self.rope_dims > 0 {
            self.rope_dims
        } else {
            self.head_dim
        };
        match self.rope_local_base_freq {
            Some(base) if self.layer_window(i).is_some() => {
                Rope::plain(dims, self.rope_traditional, base)
            }
            _ => self
                .rope_scaling
                .rope(dims, self.rope_traditional, self.rope_theta),
        }
    }
}
