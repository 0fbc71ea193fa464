//! RoPE scaling variants as `config.json` names them, turned into a [`Rope`]: linear
//! position scaling, or per-pair frequencies (Llama 3, YaRN, LongRoPE) computed once here.

use serde::Serialize;

use super::layers::Rope;

/// How a model stretches RoPE beyond its training length.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RopeScaling {
    #[default]
    None,
    /// Positions divided by `factor`.
    Linear { factor: f32 },
    /// Llama 3.1: low frequencies slowed by `factor`, a smooth ramp between.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: f32,
    },
    /// YaRN: frequencies blended between scaled and unscaled by a ramp, plus an attention factor.
    Yarn {
        factor: f32,
        original_max_position_embeddings: f32,
        beta_fast: f32,
        beta_slow: f32,
        mscale: f32,
        mscale_all_dim: f32,
    },
    /// LongRoPE (Phi-3): per-pair factors, plus an attention factor.
    LongRope {
        long_factor: Vec<f32>,
        original_max_position_embeddings: f32,
        max_position_embeddings: f32,
        long_mscale: Option<f32>,
    },
}

impl RopeScaling {
    /// The rotary embedding over `dims` dimensions with frequency base `base`.
    pub fn rope(&self, dims: i32, traditional: bool, base: f32) -> Rope {
        let mut rope = Rope::plain(dims, traditional, base);
        let inv = |i: usize| base.powf(2.0 * i as f32 / dims as f32);
        let pairs = (dims / 2) as usize;
        let freqs: Vec<f32> = match self {
            RopeScaling::None => return rope,
            RopeScaling::Linear { factor } => {
                rope.scale = 1.0 / factor;
                return rope;
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                (0..pairs)
                    .map(|i| {
                        let f = inv(i);
                        let wavelen = 2.0 * std::f32::consts::PI * f;
                        if wavelen > low_wavelen {
                            f * factor
                        } else if wavelen > high_wavelen && wavelen < low_wavelen {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            f / ((1.0 - smooth) / factor + smooth)
                        } else {
                            f
                        }
                    })
                    .collect()
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: old,
                beta_fast,
                beta_slow,
                mscale,
                mscale_all_dim,
            } => {
                let d = dims as f32;
                let correction = |rot: f32| {
                    d * (old / (rot * 2.0 * std::f32::consts::PI)).ln() / (2.0 * base.ln())
                };
                let low = correction(*beta_fast).floor().max(0.0);
                let mut high = correction(*beta_slow).ceil().min(d - 1.0);
                if low == high {
                    high += 0.001;
                }
                let get_mscale = |m: f32| {
                    if *factor <= 1.0 {
                        1.0
                    } else {
                        0.1 * m * factor.ln() + 1.0
                    }
                };
                rope.mscale = get_mscale(*mscale) / get_mscale(*mscale_all_dim);
                (0..pairs)
                    .map(|i| {
                        let extra = inv(i);
                        let inter = factor * extra;
                        let ramp = ((i as f32 - low) / (high - low)).clamp(0.0, 1.0);
                        let keep = 1.0 - ramp;
                        inter * extra / (inter * keep + extra * (1.0 - keep))
                    })
                    .collect()
            }
            RopeScaling::LongRope {
                long_factor,
                original_max_position_embeddings: old,
                max_position_embeddings: max,
                long_mscale,
            } => {
                rope.mscale =
                    long_mscale.unwrap_or_else(|| (1.0 + (max / old).ln() / old.ln()).sqrt());
                (0..pairs)
                    .map(|i| long_factor.get(i).copied().unwrap_or(1.0) * inv(i))
                    .collect()
            }
        };
        rope.freqs = Some(mlx_rs::Array::from_slice(&freqs, &[pairs as i32]));
        rope
    }
}
