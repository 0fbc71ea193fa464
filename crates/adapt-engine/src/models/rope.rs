//! RoPE scaling variants as `config.json` names them, turned into a [`Rope`]: linear
//! position scaling, or per-pair frequencies (Llama 3, YaRN, LongRoPE, or factors as GGUF
//! files store them) computed once here.

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
    /// Per-pair factors on the wavelengths, as llama.cpp stores a scaling in a GGUF file's
    /// `rope_freqs` tensor (Llama 3.1 style) when it matches no named setting.
    Factors { factors: Vec<f32> },
}

impl RopeScaling {
    /// The rotary embedding over `dims` dimensions with frequency base `base`.
    pub fn rope(&self, dims: i32, traditional: bool, base: f32) -> Rope {
        let mut rope = Rope::plain(dims, traditional, base);
        match self {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => rope.scale = 1.0 / factor,
            _ => {
                rope.mscale = self.mscale();
                if let Some(w) = self.wavelengths(dims, base) {
                    let pairs = w.len() as i32;
                    rope.freqs = Some(mlx_rs::Array::from_slice(&w, &[pairs]));
                }
            }
        }
        rope
    }

    /// The factor on the rotated part of queries and keys (YaRN and LongRoPE).
    fn mscale(&self) -> f32 {
        match self {
            RopeScaling::Yarn {
                factor,
                mscale,
                mscale_all_dim,
                ..
            } => {
                let get = |m: f32| {
                    if *factor <= 1.0 {
                        1.0
                    } else {
                        0.1 * m * factor.ln() + 1.0
                    }
                };
                get(*mscale) / get(*mscale_all_dim)
            }
            RopeScaling::LongRope {
                original_max_position_embeddings: old,
                max_position_embeddings: max,
                long_mscale,
                ..
            } => long_mscale.unwrap_or_else(|| (1.0 + (max / old).ln() / old.ln()).sqrt()),
            _ => 1.0,
        }
    }

    /// The Llama 3 scaling whose per-pair factors are `factors` (as llama.cpp stores it in a
    /// GGUF file's `rope_freqs`), if they have its shape: 1 for short wavelengths, the largest
    /// factor for long ones, the smooth ramp between. Settings that scale `low_freq_factor`,
    /// `high_freq_factor` and the original context together give the same factors, so
    /// `low_freq_factor` is taken as 1.
    pub fn llama3_from_factors(factors: &[f32], dims: i32, base: f32) -> Option<RopeScaling> {
        let factor = factors.iter().copied().fold(1.0f32, f32::max);
        if factor <= 1.0 || factors.len() != (dims / 2) as usize {
            return None;
        }
        let wavelen =
            |i: usize| 2.0 * std::f32::consts::PI * base.powf(2.0 * i as f32 / dims as f32);
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
        // The ramp's position s in [0, 1] of each factor strictly between 1 and `factor`.
        let ramp: Vec<(f32, f32)> = (factors.iter().enumerate())
            .filter(|(_, &f)| !close(f, 1.0) && !close(f, factor))
            .map(|(i, &f)| (wavelen(i), (1.0 / f - 1.0 / factor) / (1.0 - 1.0 / factor)))
            .collect();
        let longest_full = (factors.iter().enumerate())
            .filter(|(_, &f)| close(f, factor))
            .map(|(i, _)| wavelen(i))
            .fold(f32::MAX, f32::min);
        // s = (old / wavelen - 1) / (high - 1), and old = the long-wavelength boundary.
        let (old, high) = match ramp.as_slice() {
            [] => return None,
            [(w, s)] => {
                let old = longest_full * (1.0 - 1e-3);
                (old, 1.0 + (old / w - 1.0) / s)
            }
            [(w1, s1), .., (w2, s2)] => {
                // s (high - 1) + 1 = old / wavelength at both ends of the ramp.
                let k = (w2 - w1) / (s1 * w1 - s2 * w2);
                (w1 * (s1 * k + 1.0), 1.0 + k)
            }
        };
        // The round values published settings use, when they give the same factors.
        let rounded = (old.round(), (high * 1000.0).round() / 1000.0);
        [rounded, (old, high)].into_iter().find_map(|(old, high)| {
            let setting = RopeScaling::Llama3 {
                factor,
                low_freq_factor: 1.0,
                high_freq_factor: high,
                original_max_position_embeddings: old,
            };
            let ours = setting.pair_factors(dims, base)?;
            (ours.iter().zip(factors))
                .all(|(a, b)| (a - b).abs() <= 1e-3 * b.abs().max(1.0))
                .then_some(setting)
        })
    }

    /// Each rotated pair's factor on its wavelength (`None` without per-pair frequencies).
    pub fn pair_factors(&self, dims: i32, base: f32) -> Option<Vec<f32>> {
        let w = self.wavelengths(dims, base)?;
        let inv = |i: usize| base.powf(2.0 * i as f32 / dims as f32);
        Some(w.iter().enumerate().map(|(i, w)| w / inv(i)).collect())
    }

    /// The wavelength (over 2π) of each rotated pair, as MLX's `rope` takes them.
    fn wavelengths(&self, dims: i32, base: f32) -> Option<Vec<f32>> {
        let inv = |i: usize| base.powf(2.0 * i as f32 / dims as f32);
        let pairs = (dims / 2) as usize;
        Some(match self {
            RopeScaling::None | RopeScaling::Linear { .. } => return None,
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
                ..
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
            RopeScaling::LongRope { long_factor, .. } => (0..pairs)
                .map(|i| long_factor.get(i).copied().unwrap_or(1.0) * inv(i))
                .collect(),
            RopeScaling::Factors { factors } => (0..pairs)
                .map(|i| factors.get(i).copied().unwrap_or(1.0) * inv(i))
                .collect(),
        })
    }
}
