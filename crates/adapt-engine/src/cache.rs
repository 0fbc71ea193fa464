//! Per-layer key/value cache.
//!
//! A [`KvCache`] holds one attention layer's keys and values, shaped
//! `[batch, kv_heads, capacity, head_dim]`. Storage grows in chunks of [`KvCache::STEP`]
//! positions so decoding one token at a time does not reallocate; `offset` says how many
//! positions are valid. [`KvCache::trim`] forgets the newest positions (their storage is
//! reused), which is how a conversation rewinds to a shared prefix.

use mlx_rs::error::Exception;
use mlx_rs::ops::indexing::{IndexOp, TryIndexMutOp};
use mlx_rs::ops::{concatenate, zeros_dtype};
use mlx_rs::Array;

type Result<T> = std::result::Result<T, Exception>;

/// One layer's keys and values.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    keys: Option<Array>,
    values: Option<Array>,
    offset: usize,
    /// Hands keys and values straight back without keeping them (one training forward pass).
    discard: bool,
}

impl KvCache {
    /// Positions added per growth step.
    pub const STEP: usize = 256;

    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache that keeps nothing: attention over one whole sequence, as in training.
    pub fn discarding() -> Self {
        KvCache {
            discard: true,
            ..Self::default()
        }
    }

    /// A list of empty caches, one per layer.
    pub fn for_layers(n_layers: usize) -> Vec<KvCache> {
        (0..n_layers).map(|_| KvCache::new()).collect()
    }

    /// Number of valid positions.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Positions that fit before the next growth step.
    pub fn capacity(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.shape()[2] as usize)
    }

    /// Appends `keys` and `values` (`[B, H, L, D]`) at `offset` and returns all valid keys and
    /// values, including the new ones.
    pub fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        if self.discard {
            return Ok((keys.clone(), values.clone()));
        }
        let new = keys.shape()[2] as usize;
        let start = self.offset;
        let end = start + new;
        if end > self.capacity() {
            self.grow(keys, values, end)?;
        }
        let (k, v) = (self.keys.as_mut(), self.values.as_mut());
        let (Some(k), Some(v)) = (k, v) else {
            unreachable!("grow always allocates storage");
        };
        let (s, e) = (start as i32, end as i32);
        k.try_index_mut((.., .., s..e, ..), keys)?;
        v.try_index_mut((.., .., s..e, ..), values)?;
        self.offset = end;
        Ok((k.index((.., .., ..e, ..)), v.index((.., .., ..e, ..))))
    }

    /// A cache holding `keys` and `values` (`[B, H, L, D]`), of which the first `offset`
    /// positions are valid.
    pub fn from_state(keys: Array, values: Array, offset: usize) -> KvCache {
        KvCache {
            keys: Some(keys),
            values: Some(values),
            offset,
            discard: false,
        }
    }

    /// The valid keys and values (`None` when empty).
    pub fn state(&self) -> Option<(Array, Array)> {
        let (k, v) = (self.keys.as_ref()?, self.values.as_ref()?);
        let end = self.offset as i32;
        Some((k.index((.., .., ..end, ..)), v.index((.., .., ..end, ..))))
    }

    /// Forgets the newest `n` positions (at most all of them); returns how many were dropped.
    pub fn trim(&mut self, n: usize) -> usize {
        let n = n.min(self.offset);
        self.offset -= n;
        n
    }

    /// Bytes held by the cache's storage (capacity, not only valid positions).
    pub fn nbytes(&self) -> usize {
        self.keys.as_ref().map_or(0, Array::nbytes) + self.values.as_ref().map_or(0, Array::nbytes)
    }

    /// The arrays to evaluate so the cache holds computed data rather than a graph.
    pub fn arrays(&self) -> impl Iterator<Item = &Array> {
        self.keys.iter().chain(self.values.iter())
    }

    fn grow(&mut self, keys: &Array, values: &Array, needed: usize) -> Result<()> {
        let steps = needed.div_ceil(Self::STEP) - self.capacity() / Self::STEP;
        let extra = (steps * Self::STEP) as i32;
        let fresh = |like: &Array| -> Result<Array> {
            let s = like.shape();
            zeros_dtype(&[s[0], s[1], extra, s[3]], like.dtype())
        };
        let (new_k, new_v) = (fresh(keys)?, fresh(values)?);
        match (self.keys.take(), self.values.take()) {
            (Some(k), Some(v)) => {
                self.keys = Some(concatenate(&[k, new_k], 2)?);
                self.values = Some(concatenate(&[v, new_v], 2)?);
            }
            _ => {
                self.keys = Some(new_k);
                self.values = Some(new_v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlx_rs::ops::arange;

    fn block(start: i32, len: i32) -> Array {
        // [1, 1, len, 2] with distinct values per position.
        arange::<_, f32>(start * 2, (start + len) * 2, None)
            .unwrap()
            .reshape(&[1, 1, len, 2])
            .unwrap()
    }

    #[test]
    fn grows_in_steps_and_returns_all_valid_positions() {
        let mut cache = KvCache::new();
        let (k, _) = cache.update_and_fetch(&block(0, 3), &block(0, 3)).unwrap();
        assert_eq!(k.shape(), &[1, 1, 3, 2]);
        assert_eq!(cache.capacity(), KvCache::STEP);
        for i in 3..300 {
            let (k, v) = cache.update_and_fetch(&block(i, 1), &block(i, 1)).unwrap();
            assert_eq!(k.shape()[2], i + 1);
            assert_eq!(v.shape()[2], i + 1);
        }
        assert_eq!(cache.offset(), 300);
        assert_eq!(cache.capacity(), 2 * KvCache::STEP);
        let (k, _) = cache
            .update_and_fetch(&block(300, 1), &block(300, 1))
            .unwrap();
        let expected = block(0, 301);
        assert!(k.all_close(&expected, None, None, None).unwrap());
    }

    #[test]
    fn trim_rewinds_and_new_positions_overwrite() {
        let mut cache = KvCache::new();
        cache
            .update_and_fetch(&block(0, 10), &block(0, 10))
            .unwrap();
        assert_eq!(cache.trim(4), 4);
        assert_eq!(cache.offset(), 6);
        let (k, _) = cache
            .update_and_fetch(&block(100, 2), &block(100, 2))
            .unwrap();
        assert_eq!(k.shape()[2], 8);
        let tail = k.index((.., .., 6.., ..));
        assert!(tail.all_close(block(100, 2), None, None, None).unwrap());
        assert_eq!(cache.trim(100), 8);
        assert_eq!(cache.offset(), 0);
    }
}
