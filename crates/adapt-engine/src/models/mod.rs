//! Model architectures.
//!
//! [`ModelArgs`] is the architecture's shape, read from GGUF metadata or a `config.json`.
//! [`Weights`] hands named tensors (Hugging Face names) to an architecture's constructor and
//! decides, once for all models, how each is stored: dense or quantized, and in which float
//! dtype. [`Model`] is the closed set of architectures; each lives in its own short file.

pub mod layers;
pub mod llama;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mlx_rs::error::Exception;
use mlx_rs::module::ModuleParameters;
use mlx_rs::ops::dequantize;
use mlx_rs::{Array, Dtype};
use serde::Serialize;

use crate::cache::KvCache;
use crate::error::{EngineError, Result};
use layers::{Linear, QuantSpec, RmsNorm};

/// Architectures the engine implements, by their `config.json` `model_type` / GGUF name.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "mistral", "smollm"];

/// The shape of a decoder-only transformer.
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
    /// Position scale for linear RoPE scaling (1.0 = none).
    pub rope_scale: f32,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

/// A loaded language model.
#[derive(Debug, Clone)]
pub struct Model {
    pub args: ModelArgs,
    net: Network,
}

/// The closed set of implemented architectures.
#[derive(Debug, Clone)]
enum Network {
    Llama(llama::Llama),
}

impl Model {
    /// Builds the architecture `args.architecture` from `weights`.
    pub fn new(args: ModelArgs, weights: &mut Weights) -> Result<Model> {
        let net = match args.architecture.as_str() {
            "llama" | "mistral" | "smollm" => Network::Llama(llama::Llama::new(&args, weights)?),
            other => {
                return Err(EngineError::UnsupportedArchitecture {
                    path: weights.path.clone(),
                    architecture: other.to_string(),
                })
            }
        };
        Ok(Model { args, net })
    }

    /// Logits `[B, L, vocab]` for token ids `[B, L]`; reads and extends `caches` (one per layer).
    pub fn forward(&self, ids: &Array, caches: &mut [KvCache]) -> Result<Array, Exception> {
        match &self.net {
            Network::Llama(m) => m.head(&m.hidden(ids, caches)?),
        }
    }

    /// Logits `[B, vocab]` of the last position only: what generation needs, without the
    /// cost of the LM head over a whole prompt chunk.
    pub fn forward_last(&self, ids: &Array, caches: &mut [KvCache]) -> Result<Array, Exception> {
        use mlx_rs::ops::indexing::IndexOp;
        match &self.net {
            Network::Llama(m) => m.head(&m.hidden(ids, caches)?.index((.., -1, ..))),
        }
    }

    /// Number of layers, hence of KV caches a sequence needs.
    pub fn n_layers(&self) -> usize {
        self.args.num_hidden_layers as usize
    }

    /// Empty KV caches for one sequence.
    pub fn new_cache(&self) -> Vec<KvCache> {
        KvCache::for_layers(self.n_layers())
    }

    /// The model's parameters, for evaluation, counting and (later) training.
    pub fn parameters(&self) -> mlx_rs::module::ModuleParamRef<'_> {
        match &self.net {
            Network::Llama(m) => m.parameters(),
        }
    }

    /// Total bytes of the parameters.
    pub fn nbytes(&self) -> usize {
        self.parameters()
            .flatten()
            .values()
            .map(|a| a.nbytes())
            .sum()
    }

    /// Number of parameters as the unquantized model would count them.
    pub fn n_params(&self) -> usize {
        let a = &self.args;
        let (h, i, l) = (
            a.hidden_size as usize,
            a.intermediate_size as usize,
            a.num_hidden_layers as usize,
        );
        let (q, kv) = (
            (a.num_attention_heads * a.head_dim) as usize,
            (a.num_key_value_heads * a.head_dim) as usize,
        );
        let per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h;
        let embed = a.vocab_size as usize * h;
        embed * if a.tie_word_embeddings { 1 } else { 2 } + l * per_layer + h
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

/// Named tensors of a checkpoint (Hugging Face names), consumed by an architecture constructor.
#[derive(Debug)]
pub struct Weights {
    path: PathBuf,
    arrays: HashMap<String, Array>,
    group_size: i32,
    format: WeightFormat,
}

impl Weights {
    /// Wraps `arrays` read from `path`; quantized tensors use groups of `group_size`.
    pub fn new(
        path: &Path,
        arrays: HashMap<String, Array>,
        group_size: i32,
        format: WeightFormat,
    ) -> Weights {
        Weights {
            path: path.to_path_buf(),
            arrays,
            group_size,
            format,
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

    /// The linear layer `prefix` (`prefix.weight`, optional `.bias`, `.scales`, `.biases`).
    pub fn linear(&mut self, prefix: &str) -> Result<Linear> {
        let weight = self.take(&format!("{prefix}.weight"))?;
        let bias = match self.arrays.remove(&format!("{prefix}.bias")) {
            Some(b) => Some(self.float(b)?),
            None => None,
        };
        let Some(scales) = self.arrays.remove(&format!("{prefix}.scales")) else {
            return Ok(Linear::dense(self.float(weight)?, bias));
        };
        let biases = self.take(&format!("{prefix}.biases"))?;
        let packed = *weight.shape().last().unwrap_or(&0);
        let groups = *scales.shape().last().unwrap_or(&0);
        let in_features = groups * self.group_size;
        if in_features == 0 || (packed * 32) % in_features != 0 {
            return Err(EngineError::invalid_model(
                &self.path,
                format!("tensor '{prefix}' has inconsistent quantization shapes"),
            ));
        }
        let quant = QuantSpec {
            group_size: self.group_size,
            bits: packed * 32 / in_features,
        };
        let (scales, biases) = (self.float(scales)?, self.float(biases)?);
        if self.format.dequantize {
            let dense = dequantize(&weight, &scales, &biases, quant.group_size, quant.bits)?;
            Ok(Linear::dense(self.float(dense)?, bias))
        } else {
            Ok(Linear::quantized(weight, scales, biases, bias, quant))
        }
    }

    /// The RMS norm `prefix` (`prefix.weight`).
    pub fn norm(&mut self, prefix: &str, eps: f32) -> Result<RmsNorm> {
        let w = self.take(&format!("{prefix}.weight"))?;
        Ok(RmsNorm::new(self.float(w)?, eps))
    }
}
