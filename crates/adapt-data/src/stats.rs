//! Token-length statistics against `max_seq_length`: percentiles, a histogram, and how many
//! examples would be truncated and by how much.

use serde::{Deserialize, Serialize};

/// One histogram bar: examples with `lo < length <= hi` tokens (`hi` is `None` for the last,
/// open-ended bar, which holds the examples longer than `max_seq_length`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(rename = "LengthBucket"))]
pub struct Bucket {
    /// Exclusive lower bound.
    pub lo: u32,
    /// Inclusive upper bound.
    pub hi: Option<u32>,
    /// Examples in the bar.
    pub count: u64,
}

/// Lengths of a set of tokenized examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LengthStats {
    /// Examples.
    pub count: u64,
    /// All tokens.
    pub tokens: u64,
    /// Tokens the loss covers.
    pub trained_tokens: u64,
    /// Shortest example.
    pub min: u32,
    /// Median length.
    pub p50: u32,
    /// 95th percentile.
    pub p95: u32,
    /// Longest example.
    pub max: u32,
    /// Mean length.
    pub mean: f64,
    /// The limit compared against.
    pub max_seq_length: u32,
    /// Examples longer than the limit.
    pub truncated: u64,
    /// Tokens cut off in all, over the truncated examples.
    pub truncated_tokens: u64,
    /// Eight equal bars up to the limit, then one for longer examples.
    pub histogram: Vec<Bucket>,
}

/// Collects lengths one example at a time.
#[derive(Debug, Clone, Default)]
pub struct LengthCollector {
    lengths: Vec<u32>,
    trained: u64,
}

impl LengthCollector {
    /// Adds an example of `len` tokens, `trained` of them trained.
    pub fn add(&mut self, len: usize, trained: usize) {
        self.lengths.push(len.min(u32::MAX as usize) as u32);
        self.trained += trained as u64;
    }

    /// The statistics against `max_seq_length`.
    pub fn finish(mut self, max_seq_length: u32) -> LengthStats {
        let max_seq_length = max_seq_length.max(1);
        self.lengths.sort_unstable();
        let l = &self.lengths;
        let pct = |p: f64| -> u32 {
            if l.is_empty() {
                return 0;
            }
            let rank = ((p / 100.0) * l.len() as f64).ceil() as usize;
            l[rank.clamp(1, l.len()) - 1]
        };
        let tokens: u64 = l.iter().map(|&x| u64::from(x)).sum();
        // Up to 8 bars of a round width over the lengths there are (up to the limit), then
        // one bar for the examples over it: a dataset of short examples fills the chart.
        let top = l.last().copied().unwrap_or(0).clamp(1, max_seq_length);
        let step = round_step(top.div_ceil(8));
        let bars = top.div_ceil(step);
        let mut histogram: Vec<Bucket> = (0..bars)
            .map(|i| Bucket {
                lo: i * step,
                hi: Some(((i + 1) * step).min(max_seq_length)),
                count: 0,
            })
            .collect();
        histogram.push(Bucket {
            lo: max_seq_length,
            hi: None,
            count: 0,
        });
        let mut truncated = 0;
        let mut truncated_tokens = 0;
        for &len in l {
            if len > max_seq_length {
                truncated += 1;
                truncated_tokens += u64::from(len - max_seq_length);
                histogram[bars as usize].count += 1;
            } else {
                let i = (len.saturating_sub(1) / step).min(bars - 1) as usize;
                histogram[i].count += 1;
            }
        }
        LengthStats {
            count: l.len() as u64,
            tokens,
            trained_tokens: self.trained,
            min: l.first().copied().unwrap_or(0),
            p50: pct(50.0),
            p95: pct(95.0),
            max: l.last().copied().unwrap_or(0),
            mean: if l.is_empty() {
                0.0
            } else {
                tokens as f64 / l.len() as f64
            },
            max_seq_length,
            truncated,
            truncated_tokens,
            histogram,
        }
    }
}

/// The smallest width of 1, 2 or 5 times a power of ten that is at least `raw`.
fn round_step(raw: u32) -> u32 {
    let mut power = 1u32;
    loop {
        for m in [1, 2, 5] {
            if let Some(step) = power.checked_mul(m) {
                if step >= raw {
                    return step;
                }
            }
        }
        match power.checked_mul(10) {
            Some(p) => power = p,
            None => return raw.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_truncation_and_histogram() {
        let mut c = LengthCollector::default();
        for len in 1..=100 {
            c.add(len, 1);
        }
        let s = c.finish(80);
        assert_eq!((s.min, s.p50, s.p95, s.max), (1, 50, 95, 100));
        assert_eq!(s.truncated, 20);
        assert_eq!(s.truncated_tokens, (81..=100).map(|x| x - 80).sum::<u64>());
        // Lengths up to the limit of 80: 8 bars of 10, then the 20 over it.
        assert_eq!(s.histogram.len(), 9);
        assert_eq!(s.histogram[0].count, 10);
        assert_eq!(s.histogram[8].count, 20);
        assert_eq!(s.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
        assert_eq!(s.trained_tokens, 100);
    }

    #[test]
    fn the_histogram_spans_the_lengths_there_are_not_the_limit() {
        let mut c = LengthCollector::default();
        for len in [12, 18, 25, 31, 44, 47, 60] {
            c.add(len, 1);
        }
        let s = c.finish(2048);
        let bars: Vec<(u32, Option<u32>, u64)> =
            s.histogram.iter().map(|b| (b.lo, b.hi, b.count)).collect();
        assert_eq!(
            bars,
            [
                (0, Some(10), 0),
                (10, Some(20), 2),
                (20, Some(30), 1),
                (30, Some(40), 1),
                (40, Some(50), 2),
                (50, Some(60), 1),
                (2048, None, 0),
            ]
        );
        assert_eq!(round_step(1), 1);
        assert_eq!(round_step(3), 5);
        assert_eq!(round_step(256), 500);
        assert_eq!(round_step(u32::MAX), u32::MAX);
    }

    #[test]
    fn empty_is_all_zero() {
        let s = LengthCollector::default().finish(2048);
        assert_eq!((s.count, s.p50, s.max, s.truncated), (0, 0, 0, 0));
    }
}
