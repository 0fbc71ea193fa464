//! Model architectures.
//!
//! [`ModelArgs`] is the architecture's shape, read from GGUF metadata or a `config.json`.
//! [`Weights`] hands named tensors (Hugging Face names) to an architecture's constructor and
//! decides, once for all models, how each is stored: dense or quantized, and in which float
//! dtype. [`Model`] is the closed set of architectures; each lives in its own short file.

pub mod adapter;
pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod gemma2;
pub mod gemma3_text;
pub mod layers;
pub mod llama;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod rope;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mlx_rs::error::Exception;
use mlx_rs::module::ModuleParameters;
use mlx_rs::ops::dequantize;
use mlx_rs::{Array, Dtype};
use serde::Serialize;

use crate::cache::KvCache;
use crate::error::{EngineError, Result};
use config::Config;
use decoder::{Decoder, Layout};
use layers::{Linear, QuantSpec, RmsNorm, Rope};
pub use rope::RopeScaling;

/// Architectures the engine implements, by their `config.json` `model_type` / GGUF name.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "llama",
    "mistral",
    "smollm",
    "qwen2",
    "qwen3",
    "phi3",
    "gemma2",
    "gemma3_text",
];

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
        }
    }
}

impl ModelArgs {
    /// Reads `config.json` (already parsed) of the folder at `path`.
    pub fn from_config(path: &Path, json: &serde_json::Value) -> Result<ModelArgs> {
        let c = Config { path, json };
        let model_type = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| EngineError::invalid_model(path, "field 'model_type' is missing"))?;
        match model_type {
            "llama" | "mistral" | "smollm" => llama::args(&c, model_type),
            "qwen2" => qwen2::args(&c),
            "qwen3" => qwen3::args(&c),
            "phi3" => phi3::args(&c),
            "gemma2" => gemma2::args(&c),
            "gemma3_text" => gemma3_text::args(&c),
            other => Err(EngineError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture: other.to_string(),
            }),
        }
    }

    /// The attention window of layer `i`, if it is a sliding-window layer.
    pub fn layer_window(&self, i: usize) -> Option<usize> {
        let window = self.sliding_window?;
        match self.sliding_window_pattern {
            Some(p) if p > 0 && (i + 1).is_multiple_of(p) => None,
            _ => Some(window),
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

    fn layout(&self) -> Option<Layout> {
        Some(match self.architecture.as_str() {
            "llama" | "mistral" | "smollm" => llama::LAYOUT,
            "qwen2" => qwen2::LAYOUT,
            "qwen3" => qwen3::LAYOUT,
            "phi3" => phi3::LAYOUT,
            "gemma2" => gemma2::LAYOUT,
            "gemma3_text" => gemma3_text::LAYOUT,
            _ => return None,
        })
    }
}

/// A loaded language model.
#[derive(Debug, Clone)]
pub struct Model {
    pub args: ModelArgs,
    net: Decoder,
    n_params: usize,
}

impl Model {
    /// Builds the architecture `args.architecture` from `weights`.
    pub fn new(args: ModelArgs, weights: &mut Weights) -> Result<Model> {
        let Some(layout) = args.layout() else {
            return Err(EngineError::UnsupportedArchitecture {
                path: weights.path.clone(),
                architecture: args.architecture.clone(),
            });
        };
        let before = weights.n_params;
        let net = Decoder::new(&args, layout, weights)?;
        let n_params = weights.n_params - before;
        Ok(Model {
            args,
            net,
            n_params,
        })
    }

    /// Logits `[B, L, vocab]` for token ids `[B, L]`; reads and extends `caches` (one per layer).
    pub fn forward(&self, ids: &Array, caches: &mut [KvCache]) -> Result<Array, Exception> {
        self.net.head(&self.net.hidden(ids, caches)?)
    }

    /// Logits `[B, vocab]` of the last position only: what generation needs, without the
    /// cost of the LM head over a whole prompt chunk.
    pub fn forward_last(&self, ids: &Array, caches: &mut [KvCache]) -> Result<Array, Exception> {
        use mlx_rs::ops::indexing::IndexOp;
        self.net
            .head(&self.net.hidden(ids, caches)?.index((.., -1, ..)))
    }

    /// The network, for adapters and training.
    pub fn net(&self) -> &Decoder {
        &self.net
    }

    /// The network, mutably, for adapters and training.
    pub fn net_mut(&mut self) -> &mut Decoder {
        &mut self.net
    }

    /// Number of layers, hence of KV caches a sequence needs.
    pub fn n_layers(&self) -> usize {
        self.args.num_hidden_layers as usize
    }

    /// Empty KV caches for one sequence.
    pub fn new_cache(&self) -> Vec<KvCache> {
        KvCache::for_layers(self.n_layers(), None)
    }

    /// The model's parameters, for evaluation, counting and (later) training.
    pub fn parameters(&self) -> mlx_rs::module::ModuleParamRef<'_> {
        self.net.parameters()
    }

    /// Total bytes of the parameters.
    pub fn nbytes(&self) -> usize {
        self.parameters()
            .flatten()
            .values()
            .map(|a| a.nbytes())
            .sum()
    }

    /// Whether any layer holds quantized weights.
    pub fn is_quantized(&self) -> bool {
        self.parameters()
            .flatten()
            .keys()
            .any(|k| k.ends_with(".scales"))
    }

    /// Number of parameters as the unquantized model would count them.
    pub fn n_params(&self) -> usize {
        self.n_params
    }
}

/// How [`Weights`] stores what it hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightFormat {
    /// Float dtype for dense weights, norms, and quantization scales and biases.
    pub dtype: Dtype,
    /// Turn quantized weights into dense ones at load (the CPU backend runs those faster).
    pub dequantize: bool,
}

/// How a checkpoint's weights are quantized: MLX's group-wise affine quantization, the same
/// for every layer or overridden per module, as mlx-lm records it in `config.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuantConfig {
    /// The spec of quantized layers without an override.
    pub default: Option<QuantSpec>,
    /// Per-module specs by module path (`model.layers.0.mlp.down_proj`); `None`: left dense.
    pub overrides: HashMap<String, Option<QuantSpec>>,
}

impl QuantConfig {
    /// The same spec for every layer.
    pub fn uniform(spec: QuantSpec) -> QuantConfig {
        QuantConfig {
            default: Some(spec),
            overrides: HashMap::new(),
        }
    }

    /// The spec for module `prefix`.
    pub fn spec(&self, prefix: &str) -> Option<QuantSpec> {
        match self.overrides.get(prefix) {
            Some(spec) => *spec,
            None => self.default,
        }
    }
}

/// Named tensors of a checkpoint (Hugging Face names), consumed by an architecture constructor.
#[derive(Debug)]
pub struct Weights {
    path: PathBuf,
    arrays: HashMap<String, Array>,
    quant: QuantConfig,
    format: WeightFormat,
    /// Parameters handed out so far, counted as the unquantized model would.
    n_params: usize,
}

impl Weights {
    /// Wraps `arrays` read from `path`; quantized tensors follow `quant`.
    pub fn new(
        path: &Path,
        arrays: HashMap<String, Array>,
        quant: QuantConfig,
        format: WeightFormat,
    ) -> Weights {
        Weights {
            path: path.to_path_buf(),
            arrays,
            quant,
            format,
            n_params: 0,
        }
    }

    /// Names left after the model took what it needs.
    pub fn unused(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.arrays.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    fn take(&mut self, name: &str) -> Result<Array> {
        self.arrays.remove(name).ok_or_else(|| {
            EngineError::invalid_model(
                &self.path,
                format!(
                    "tensor '{name}' is missing; the file is incomplete or not this architecture"
                ),
            )
        })
    }

    fn float(&self, a: Array) -> Result<Array> {
        Ok(if a.dtype() == self.format.dtype {
            a
        } else {
            a.as_dtype(self.format.dtype)?
        })
    }

    /// The linear layer `prefix` (`prefix.weight`, `.bias` — required when `bias` —,
    /// `.scales`, `.biases`).
    pub fn linear(&mut self, prefix: &str, bias: bool) -> Result<Linear> {
        let weight = self.take(&format!("{prefix}.weight"))?;
        let bias = match self.arrays.remove(&format!("{prefix}.bias")) {
            Some(b) => Some(self.float(b)?),
            None if bias => {
                return Err(EngineError::invalid_model(
                    &self.path,
                    format!("tensor '{prefix}.bias' is missing; this architecture has biases here"),
                ))
            }
            None => None,
        };
        self.n_params += bias.as_ref().map_or(0, Array::size);
        let Some(scales) = self.arrays.remove(&format!("{prefix}.scales")) else {
            self.n_params += weight.size();
            return Ok(Linear::dense(self.float(weight)?, bias));
        };
        let biases = self.take(&format!("{prefix}.biases"))?;
        let packed = *weight.shape().last().unwrap_or(&0);
        let groups = *scales.shape().last().unwrap_or(&0);
        let spec = self.quant.spec(prefix);
        let group_size = spec.map_or(32, |s| s.group_size);
        let in_features = groups * group_size;
        let bits = if in_features > 0 && (packed * 32) % in_features == 0 {
            packed * 32 / in_features
        } else {
            0
        };
        if !matches!(bits, 2..=8) || spec.is_some_and(|s| s.bits != bits) {
            return Err(EngineError::invalid_model(
                &self.path,
                format!(
                    "tensor '{prefix}' has quantization shapes that do not match its \
                     configuration (group size {group_size})"
                ),
            ));
        }
        self.n_params += (weight.size() / packed as usize) * in_features as usize;
        let quant = QuantSpec { group_size, bits };
        let (scales, biases) = (self.float(scales)?, self.float(biases)?);
        if self.format.dequantize {
            let dense = dequantize(&weight, &scales, &biases, quant.group_size, quant.bits)?;
            Ok(Linear::dense(self.float(dense)?, bias))
        } else {
            Ok(Linear::quantized(weight, scales, biases, bias, quant))
        }
    }

    /// The RMS norm `prefix` (`prefix.weight`), whose stored weight is the scale minus `offset`.
    pub fn norm(&mut self, prefix: &str, eps: f32, offset: f32) -> Result<RmsNorm> {
        let w = self.take(&format!("{prefix}.weight"))?;
        self.n_params += w.size();
        let w = self.float(w)?;
        let w = if offset == 0.0 {
            w
        } else {
            w.add(Array::from_f32(offset).as_dtype(w.dtype())?)?
        };
        Ok(RmsNorm::new(w, eps))
    }
}
