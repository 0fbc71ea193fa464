//! Batches for training: examples sorted by length are cut into buckets of `batch_size`
//! (so each batch wastes little padding), each batch is padded to its longest example
//! (truncated to `max_seq_length`) rounded up to a multiple of 8, and the buckets are visited
//! in an order shuffled per epoch from the seed. A [`Position`] (epoch, step) is all it takes
//! to resume: the same position always yields the same batch.

use serde::{Deserialize, Serialize};

use crate::cache::TokenCache;
use crate::error::DataError;
use crate::split::{mix, Rng};

/// Batching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchConfig {
    /// Examples per batch.
    pub batch_size: usize,
    /// Longer examples are truncated to this many tokens.
    pub max_seq_length: usize,
    /// Seed of the per-epoch shuffle.
    pub seed: u64,
    /// Token id written into padding.
    pub pad_id: u32,
}

/// Where a run is in the data: the next batch to take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Epoch, from 0.
    pub epoch: u64,
    /// Batch within the epoch, from 0.
    pub step: u64,
}

/// One padded batch, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Where this batch is.
    pub position: Position,
    /// Rows (examples).
    pub rows: usize,
    /// Columns (tokens per row, a multiple of 8).
    pub width: usize,
    /// `rows * width` token ids, padding filled with `pad_id`.
    pub tokens: Vec<u32>,
    /// `rows * width` loss mask: 1 where a token is trained, 0 elsewhere and in padding.
    pub mask: Vec<u8>,
    /// Real (unpadded, truncated) length of each row.
    pub lengths: Vec<u32>,
    /// Index of each row's example in the split.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Loss-bearing positions of the batch: mask entries after each row's first token (the
    /// first token is never predicted).
    pub fn trained_tokens(&self) -> u64 {
        self.mask
            .chunks(self.width.max(1))
            .map(|row| row.iter().skip(1).map(|&m| u64::from(m)).sum::<u64>())
            .sum()
    }

    /// The batch cut into at most `parts` micro-batches of consecutive rows (as even as
    /// possible), each trimmed to its own longest row rounded up to a multiple of 8. Together
    /// they hold exactly this batch's rows, tokens and mask, so their token-weighted losses
    /// and gradients add up to this batch's.
    pub fn split_rows(&self, parts: usize) -> Vec<Batch> {
        let per = self.rows.div_ceil(parts.clamp(1, self.rows.max(1)));
        (0..self.rows)
            .step_by(per.max(1))
            .map(|start| {
                let end = (start + per).min(self.rows);
                let lengths = self.lengths[start..end].to_vec();
                let longest = lengths.iter().copied().max().unwrap_or(0) as usize;
                let width = (longest.div_ceil(8).max(1) * 8).min(self.width);
                let mut tokens = Vec::with_capacity((end - start) * width);
                let mut mask = Vec::with_capacity((end - start) * width);
                for r in start..end {
                    let row = r * self.width;
                    tokens.extend_from_slice(&self.tokens[row..row + width]);
                    mask.extend_from_slice(&self.mask[row..row + width]);
                }
                Batch {
                    position: self.position,
                    rows: end - start,
                    width,
                    tokens,
                    mask,
                    lengths,
                    indices: self.indices[start..end].to_vec(),
                }
            })
            .collect()
    }
}

/// Hands out batches of one split.
pub struct Batcher<'a> {
    cache: &'a TokenCache,
    buckets: Vec<Vec<usize>>,
    config: BatchConfig,
}

impl<'a> Batcher<'a> {
    /// Buckets the examples of `cache`.
    pub fn new(cache: &'a TokenCache, config: BatchConfig) -> Result<Batcher<'a>, DataError> {
        if config.batch_size == 0 || config.max_seq_length == 0 {
            return Err(DataError::BadOption {
                message: "batch_size and max_seq_length must be at least 1".into(),
            });
        }
        if cache.is_empty() {
            return Err(DataError::BadOption {
                message: "cannot batch an empty split".into(),
            });
        }
        let mut order: Vec<usize> = (0..cache.len()).collect();
        order.sort_by_key(|&i| (cache.length(i), i));
        let buckets = order
            .chunks(config.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        Ok(Batcher {
            cache,
            buckets,
            config,
        })
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.buckets.len()
    }

    /// The bucket order of `epoch`.
    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.buckets.len()).collect();
        Rng::new(mix(self.config.seed) ^ mix(epoch.wrapping_add(1))).shuffle(&mut order);
        order
    }

    /// The batch at `position` (a step past the epoch's end wraps into the next epochs).
    pub fn batch_at(&self, position: Position) -> Batch {
        let per_epoch = self.buckets.len() as u64;
        let position = Position {
            epoch: position.epoch + position.step / per_epoch,
            step: position.step % per_epoch,
        };
        let bucket = &self.buckets[self.order(position.epoch)[position.step as usize]];
        let max_len = self.config.max_seq_length;
        let longest = bucket
            .iter()
            .map(|&i| self.cache.length(i).min(max_len))
            .max()
            .unwrap_or(0);
        let width = longest.div_ceil(8).max(1) * 8;
        let rows = bucket.len();
        let mut tokens = vec![self.config.pad_id; rows * width];
        let mut mask = vec![0u8; rows * width];
        let mut lengths = Vec::with_capacity(rows);
        for (r, &i) in bucket.iter().enumerate() {
            let ex = self.cache.example(i);
            let n = ex.tokens.len().min(max_len);
            tokens[r * width..r * width + n].copy_from_slice(&ex.tokens[..n]);
            for (dst, &m) in mask[r * width..r * width + n].iter_mut().zip(&ex.mask) {
                *dst = u8::from(m);
            }
            lengths.push(n as u32);
        }
        Batch {
            position,
            rows,
            width,
            tokens,
            mask,
            lengths,
            indices: bucket.clone(),
        }
    }

    /// The batch at `position`, moving `position` on to the next one.
    pub fn next_batch(&self, position: &mut Position) -> Batch {
        let batch = self.batch_at(*position);
        *position = Position {
            epoch: batch.position.epoch + (batch.position.step + 1) / self.buckets.len() as u64,
            step: (batch.position.step + 1) % self.buckets.len() as u64,
        };
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of lengths 3, 5, 9 and 17 in a batch 24 wide, masks on after the first token.
    fn batch() -> Batch {
        let lengths = [3u32, 5, 9, 17];
        let width = 24;
        let mut tokens = vec![0u32; 4 * width];
        let mut mask = vec![0u8; 4 * width];
        for (r, &n) in lengths.iter().enumerate() {
            for j in 0..n as usize {
                tokens[r * width + j] = 100 * r as u32 + j as u32 + 1;
                mask[r * width + j] = u8::from(j > 0);
            }
        }
        Batch {
            position: Position { epoch: 1, step: 2 },
            rows: 4,
            width,
            tokens,
            mask,
            lengths: lengths.to_vec(),
            indices: vec![7, 3, 5, 1],
        }
    }

    #[test]
    fn split_rows_keeps_every_row_trimmed_to_its_own_width() {
        let b = batch();
        assert_eq!(b.trained_tokens(), 2 + 4 + 8 + 16);
        assert_eq!(b.split_rows(1), vec![b.clone()]);
        let halves = b.split_rows(2);
        assert_eq!(halves.len(), 2);
        assert_eq!((halves[0].rows, halves[0].width), (2, 8));
        assert_eq!((halves[1].rows, halves[1].width), (2, 24));
        assert_eq!(halves[1].indices, vec![5, 1]);
        assert_eq!(&halves[0].tokens[8..13], &b.tokens[24..29]);
        let total: u64 = halves.iter().map(Batch::trained_tokens).sum();
        assert_eq!(total, b.trained_tokens());
        // More parts than rows: one row each; three parts of four rows: two rows, then two.
        assert_eq!(b.split_rows(9).len(), 4);
        assert_eq!(b.split_rows(3).len(), 2);
        assert!(b
            .split_rows(4)
            .iter()
            .all(|m| m.rows == 1 && m.position == b.position));
    }
}
