//! Train / valid / test splits and the seeded random numbers behind splits and shuffles.
//!
//! Either each split comes from its own file, or one file is split by ratio: each example's
//! split is drawn from a hash of (seed, its index), so the split is reproducible, streams
//! (no example is held back) and does not depend on the other examples.

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training examples.
    Train,
    /// Validation examples.
    Valid,
    /// Test examples.
    Test,
}

impl Split {
    /// All splits, in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];

    /// `train`, `valid` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }
}

/// How to split a single input by ratio.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitRatios {
    /// Share of examples for validation, 0..1.
    pub valid: f64,
    /// Share of examples for test, 0..1.
    pub test: f64,
    /// Seed of the draw.
    pub seed: u64,
}

impl Default for SplitRatios {
    fn default() -> SplitRatios {
        SplitRatios {
            valid: 0.1,
            test: 0.0,
            seed: 0,
        }
    }
}

impl SplitRatios {
    /// Checks the ratios are in range.
    pub fn check(&self) -> Result<(), DataError> {
        let ok = |x: f64| (0.0..1.0).contains(&x);
        if !ok(self.valid) || !ok(self.test) || self.valid + self.test >= 1.0 {
            return Err(DataError::BadOption {
                message: format!(
                    "split ratios valid={} test={} must each be in [0, 1) and sum to less than 1",
                    self.valid, self.test
                ),
            });
        }
        Ok(())
    }

    /// The split of the example at `index`.
    pub fn assign(&self, index: u64) -> Split {
        let u = unit(mix(self.seed ^ mix(index.wrapping_add(0x5EED))));
        if u < self.valid {
            Split::Valid
        } else if u < self.valid + self.test {
            Split::Test
        } else {
            Split::Train
        }
    }
}

/// SplitMix64's finalizer: a well-mixed 64-bit hash of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A small seeded generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Shuffles `items` (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_split_is_seeded_and_close_to_the_ratios() {
        let r = SplitRatios {
            valid: 0.1,
            test: 0.2,
            seed: 7,
        };
        let splits: Vec<Split> = (0..10_000).map(|i| r.assign(i)).collect();
        let again: Vec<Split> = (0..10_000).map(|i| r.assign(i)).collect();
        assert_eq!(splits, again);
        let count = |s| splits.iter().filter(|&&x| x == s).count();
        assert!(
            (900..1100).contains(&count(Split::Valid)),
            "{}",
            count(Split::Valid)
        );
        assert!(
            (1800..2200).contains(&count(Split::Test)),
            "{}",
            count(Split::Test)
        );
        let other = SplitRatios { seed: 8, ..r };
        assert_ne!(
            splits,
            (0..10_000).map(|i| other.assign(i)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_ratios_are_refused() {
        let bad = SplitRatios {
            valid: 0.6,
            test: 0.5,
            seed: 0,
        };
        assert_eq!(bad.check().unwrap_err().code(), "data.bad_option");
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<u32> = (0..100).collect();
        Rng::new(3).shuffle(&mut a);
        let mut b: Vec<u32> = (0..100).collect();
        Rng::new(3).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        a.sort();
        assert_eq!(a, (0..100).collect::<Vec<_>>());
    }
}
