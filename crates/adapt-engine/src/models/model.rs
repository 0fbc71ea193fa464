//! [`Model`]: a loaded language model — its [`ModelArgs`] and the decoder built from
//! [`Weights`] by the architecture's layout.

use mlx_rs::error::Exception;
use mlx_rs::module::ModuleParameters;
use mlx_rs::Array;

use super::args::ModelArgs;
use super::decoder::Decoder;
use super::registry::unsupported;
use super::weights::Weights;
use crate::cache::KvCache;
use crate::error::Result;

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
            return Err(unsupported(weights.path(), &args.architecture));
        };
        let before = weights.n_params();
        let net = Decoder::new(&args, layout, weights)?;
        let n_params = weights.n_params() - before;
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

    /// A vector that places `tokens` among other texts by meaning, taken from the model
    /// itself: the hidden states after block `layer` (1-based, clamped to the model's depth) of
    /// the tokens seen alone, each scaled to unit length, averaged over the positions after the
    /// first (the first position of a sequence carries outsized activations in most models and
    /// would otherwise dominate the mean), as f32 values.
    pub fn embedding(&self, tokens: &[u32], layer: usize) -> Result<Vec<f32>> {
        use mlx_rs::ops::indexing::IndexOp;
        if tokens.is_empty() {
            return Err(crate::error::EngineError::InvalidRequest(
                "an empty text has no embedding".into(),
            ));
        }
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let ids = Array::from_slice(&ids, &[1, ids.len() as i32]);
        let layer = layer.clamp(1, self.n_layers());
        let mut h = self
            .net
            .hidden_after(&ids, layer)?
            .as_dtype(mlx_rs::Dtype::Float32)?;
        if tokens.len() > 1 {
            h = h.index((.., 1.., ..));
        }
        let length = mlx_rs::ops::maximum(
            h.square()?.sum_axis(-1, true)?.sqrt()?,
            Array::from_f32(1e-6),
        )?;
        let pooled = h.divide(&length)?.mean_axis(1, None)?;
        pooled.eval()?;
        Ok(pooled.as_slice::<f32>().to_vec())
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
