//! Sampling as data: [`SamplingParams`] says how to pick the next token, [`Sampler`] applies
//! it to one row of logits. The pipeline, in order: repetition penalty over the recent tokens,
//! then greedy (temperature 0) or temperature → top-k → top-p → min-p → a draw from a seeded
//! generator, so the same seed gives the same text.

use serde::{Deserialize, Serialize};

/// How to choose each next token. The defaults are greedy decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct SamplingParams {
    /// 0 picks the most likely token (greedy); higher values flatten the distribution.
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probabilities sum to at least this (1 = off).
    pub top_p: f32,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens less likely than `min_p` × the most likely one (0 = off).
    pub min_p: f32,
    /// Penalize tokens seen in the last `repetition_context` tokens (1 = off).
    pub repetition_penalty: f32,
    pub repetition_context: usize,
    /// Seed of the random draw; `None` seeds from the clock.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repetition_context: 20,
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Checks the ranges; returns a message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |field: &str, rule: &str| Err(format!("sampling: {field} must be {rule}"));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature", "a finite number ≥ 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", "in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", "in [0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition_penalty", "a finite number > 0");
        }
        Ok(())
    }
}

/// Applies [`SamplingParams`] to logits, keeping the random state between calls.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: SplitMix64,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Sampler {
        let seed = params.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Sampler {
            params,
            rng: SplitMix64(seed),
        }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks a token id from `logits` (one row, vocabulary-sized); `recent` are the tokens
    /// seen so far, of which the last `repetition_context` are penalized.
    pub fn sample(&mut self, logits: &[f32], recent: &[u32]) -> u32 {
        let p = &self.params;
        let mut logits = logits.to_vec();
        if p.repetition_penalty != 1.0 {
            let start = recent.len().saturating_sub(p.repetition_context);
            for &t in &recent[start..] {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l < 0.0 {
                        *l * p.repetition_penalty
                    } else {
                        *l / p.repetition_penalty
                    };
                }
            }
        }
        if p.temperature == 0.0 {
            return argmax(&logits);
        }
        // Candidates sorted by logit, most likely first.
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let key = |i: &u32| logits[*i as usize];
        if p.top_k > 0 && p.top_k < order.len() {
            order.select_nth_unstable_by(p.top_k - 1, |a, b| key(b).total_cmp(&key(a)));
            order.truncate(p.top_k);
        }
        order.sort_unstable_by(|a, b| key(b).total_cmp(&key(a)));
        let max = key(&order[0]);
        let mut probs: Vec<f32> = order
            .iter()
            .map(|&i| ((logits[i as usize] - max) / p.temperature).exp())
            .collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= total);
        let mut keep = probs.len();
        if p.top_p < 1.0 {
            let mut cumulative = 0.0;
            for (n, prob) in probs.iter().enumerate() {
                cumulative += prob;
                if cumulative >= p.top_p {
                    keep = n + 1;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            let floor = probs[0] * p.min_p;
            keep = keep.min(probs.iter().take_while(|&&x| x >= floor).count().max(1));
        }
        let kept_total: f32 = probs[..keep].iter().sum();
        let mut draw = self.rng.next_f32() * kept_total;
        for (n, prob) in probs[..keep].iter().enumerate() {
            draw -= prob;
            if draw <= 0.0 {
                return order[n];
            }
        }
        order[keep - 1]
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// A small, fast, seedable generator (SplitMix64); enough for sampling, not for secrets.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(f: impl FnOnce(&mut SamplingParams)) -> SamplingParams {
        let mut p = SamplingParams {
            seed: Some(7),
            ..SamplingParams::default()
        };
        f(&mut p);
        p
    }

    #[test]
    fn greedy_picks_the_largest_logit() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9], &[]), 1);
    }

    #[test]
    fn repetition_penalty_can_change_the_greedy_choice() {
        let mut s = Sampler::new(params(|p| p.repetition_penalty = 2.0));
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9], &[1]), 3);
        // Only the last `repetition_context` tokens count.
        let mut s = Sampler::new(params(|p| {
            p.repetition_penalty = 2.0;
            p.repetition_context = 1;
        }));
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9], &[1, 0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_tiny_is_greedy() {
        let logits = [0.5, 1.0, 0.9, 0.8];
        for p in [
            params(|p| {
                p.temperature = 1.0;
                p.top_k = 1;
            }),
            params(|p| {
                p.temperature = 1.0;
                p.top_p = 1e-6;
            }),
            params(|p| {
                p.temperature = 1.0;
                p.min_p = 0.99;
            }),
        ] {
            let mut s = Sampler::new(p);
            for _ in 0..50 {
                assert_eq!(s.sample(&logits, &[]), 1);
            }
        }
    }

    #[test]
    fn same_seed_same_draws_and_frequencies_follow_probabilities() {
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 1/4 and 3/4
        let p = params(|p| p.temperature = 1.0);
        let (mut a, mut b) = (Sampler::new(p.clone()), Sampler::new(p));
        let draws: Vec<u32> = (0..4000).map(|_| a.sample(&logits, &[])).collect();
        let again: Vec<u32> = (0..4000).map(|_| b.sample(&logits, &[])).collect();
        assert_eq!(draws, again);
        let ones = draws.iter().filter(|&&t| t == 1).count() as f32 / 4000.0;
        assert!((ones - 0.75).abs() < 0.03, "frequency {ones}");
    }

    #[test]
    fn validation_names_the_field() {
        let err = params(|p| p.top_p = 0.0).validate().unwrap_err();
        assert!(err.contains("top_p"));
        assert!(params(|p| p.temperature = -1.0).validate().is_err());
        assert!(SamplingParams::default().validate().is_ok());
    }
}
