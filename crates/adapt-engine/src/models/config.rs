//! Reading a Hugging Face / mlx-lm `config.json` into [`ModelArgs`]: typed access whose
//! errors name the file and the field, and the settings every architecture shares.

use std::path::Path;

use serde_json::Value;

use super::args::ModelArgs;
use super::rope::RopeScaling;
use crate::error::{EngineError, Result};

/// A parsed `config.json` with typed, error-reporting getters.
pub struct Config<'a> {
    pub path: &'a Path,
    pub json: &'a Value,
}

impl Config<'_> {
    fn bad(&self, key: &str, want: &str) -> EngineError {
        EngineError::invalid_model(
            self.path,
            format!("field '{key}' is missing or is not {want}"),
        )
    }

    pub fn has(&self, key: &str) -> bool {
        self.json.get(key).is_some_and(|v| !v.is_null())
    }

    pub fn int(&self, key: &str) -> Result<i32> {
        self.opt_int(key)?
            .ok_or_else(|| self.bad(key, "a whole number"))
    }

    pub fn opt_int(&self, key: &str) -> Result<Option<i32>> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.bad(key, "a whole number")),
        }
    }

    pub fn opt_float(&self, key: &str) -> Result<Option<f32>> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|f| Some(f as f32))
                .ok_or_else(|| self.bad(key, "a number")),
        }
    }

    pub fn int_or(&self, key: &str, default: i32) -> Result<i32> {
        Ok(self.opt_int(key)?.unwrap_or(default))
    }

    /// A list of whole numbers (empty when absent).
    pub fn int_list(&self, key: &str) -> Result<Vec<i32>> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_i64().and_then(|n| i32::try_from(n).ok()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.bad(key, "a list of whole numbers")),
            Some(_) => Err(self.bad(key, "a list of whole numbers")),
        }
    }

    pub fn float_or(&self, key: &str, default: f32) -> Result<f32> {
        Ok(self.opt_float(key)?.unwrap_or(default))
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.bad(key, "true or false")),
        }
    }

    /// The settings of a Llama-style decoder, with `tie_word_embeddings` defaulting to
    /// `tied_by_default` as the architecture's reference code does.
    pub fn common(&self, architecture: &str, tied_by_default: bool) -> Result<ModelArgs> {
        let hidden = self.int("hidden_size")?;
        let heads = self.int("num_attention_heads")?;
        if heads <= 0 || (!self.has("head_dim") && hidden % heads != 0) {
            return Err(EngineError::invalid_model(
                self.path,
                format!("{hidden} hidden units do not split into {heads} attention heads"),
            ));
        }
        let head_dim = self.opt_int("head_dim")?.unwrap_or(hidden / heads);
        let partial = self.float_or("partial_rotary_factor", 1.0)?;
        Ok(ModelArgs {
            architecture: architecture.to_string(),
            hidden_size: hidden,
            intermediate_size: self.int("intermediate_size")?,
            num_hidden_layers: self.int("num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: self.opt_int("num_key_value_heads")?.unwrap_or(heads),
            head_dim,
            vocab_size: self.int("vocab_size")?,
            rms_norm_eps: self.float_or("rms_norm_eps", 1e-5)?,
            rope_theta: self.float_or("rope_theta", 10_000.0)?,
            rope_traditional: self.bool_or("rope_traditional", false)?,
            rope_scaling: self.rope_scaling()?,
            rope_dims: (head_dim as f32 * partial) as i32,
            max_position_embeddings: self.opt_int("max_position_embeddings")?.unwrap_or(4096)
                as usize,
            tie_word_embeddings: self.bool_or("tie_word_embeddings", tied_by_default)?,
            attention_bias: self.bool_or("attention_bias", false)?,
            ..ModelArgs::default()
        })
    }

    /// `rope_scaling` (`type` or `rope_type`: default, linear, llama3, yarn, longrope / su).
    pub fn rope_scaling(&self) -> Result<RopeScaling> {
        let Some(s) = self.json.get("rope_scaling").filter(|v| !v.is_null()) else {
            return Ok(RopeScaling::None);
        };
        let sub = Config {
            path: self.path,
            json: s,
        };
        let kind = s
            .get("type")
            .or_else(|| s.get("rope_type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let factor = || sub.float_or("factor", 1.0);
        let original = |default: f32| -> Result<f32> {
            Ok(match sub.opt_float("original_max_position_embeddings")? {
                Some(v) => v,
                None => self
                    .opt_float("original_max_position_embeddings")?
                    .unwrap_or(default),
            })
        };
        Ok(match kind {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear { factor: factor()? },
            "llama3" => RopeScaling::Llama3 {
                factor: factor()?,
                low_freq_factor: sub.float_or("low_freq_factor", 1.0)?,
                high_freq_factor: sub.float_or("high_freq_factor", 4.0)?,
                original_max_position_embeddings: original(8192.0)?,
            },
            "yarn" => RopeScaling::Yarn {
                factor: factor()?,
                original_max_position_embeddings: original(4096.0)?,
                beta_fast: sub.float_or("beta_fast", 32.0)?,
                beta_slow: sub.float_or("beta_slow", 1.0)?,
                mscale: sub.float_or("mscale", 1.0)?,
                mscale_all_dim: sub.float_or("mscale_all_dim", 0.0)?,
            },
            "longrope" | "su" => RopeScaling::LongRope {
                long_factor: s
                    .get("long_factor")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_f64)
                            .map(|f| f as f32)
                            .collect()
                    })
                    .ok_or_else(|| sub.bad("rope_scaling.long_factor", "a list of numbers"))?,
                original_max_position_embeddings: original(4096.0)?,
                max_position_embeddings: self.float_or("max_position_embeddings", 131_072.0)?,
                long_mscale: sub.opt_float("long_mscale")?,
            },
            other => {
                return Err(EngineError::invalid_model(
                    self.path,
                    format!(
                        "RoPE scaling '{other}' is not supported; supported: default, linear, \
                         llama3, yarn, longrope"
                    ),
                ))
            }
        })
    }
}
