//! [`Weights`]: named tensors of a checkpoint (Hugging Face names) handed to an architecture's
//! constructor; it decides, once for all architectures, how each layer is stored — dense or
//! quantized ([`QuantConfig`]) and in which float dtype ([`WeightFormat`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mlx_rs::ops::dequantize;
use mlx_rs::{Array, Dtype};

use super::layers::{Linear, Norm, NormKind, QuantSpec};
use crate::error::{EngineError, Result};

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

    /// The file or folder the tensors were read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Parameters handed out so far, counted as the unquantized model would.
    pub fn n_params(&self) -> usize {
        self.n_params
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

    /// The norm `prefix` (`prefix.weight`, and a layer norm's `prefix.bias` if stored), whose
    /// stored weight is the scale minus `offset`.
    pub fn norm(&mut self, prefix: &str, kind: NormKind, eps: f32, offset: f32) -> Result<Norm> {
        let w = self.take(&format!("{prefix}.weight"))?;
        self.n_params += w.size();
        let w = self.float(w)?;
        let w = if offset == 0.0 {
            w
        } else {
            w.add(Array::from_f32(offset).as_dtype(w.dtype())?)?
        };
        Ok(match kind {
            NormKind::Rms => Norm::rms(w, eps),
            NormKind::Layer => {
                let bias = match self.arrays.remove(&format!("{prefix}.bias")) {
                    Some(b) => {
                        self.n_params += b.size();
                        Some(self.float(b)?)
                    }
                    None => None,
                };
                Norm::layer(w, bias, eps)
            }
        })
    }
}
