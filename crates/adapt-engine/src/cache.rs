//! Per-layer key/value cache.
//!
//! A [`KvCache`] holds one attention layer's keys and values, shaped
//! `[batch, kv_heads, capacity, head_dim]`. Storage grows in chunks of [`KvCache::STEP`]
//! positions so decoding one token at a time does not reallocate; `offset` says how many
//! positions are valid. [`KvCache::trim`] forgets the newest positions (their storage is
//! reused), which is how a conversation rewinds to a shared prefix.
//!
//! A cache made with a [`KvQuant`] ([`KvCache::with_quant`]) stores keys and values as MLX affine-quantized
//! triplets (packed values, scales, biases — mlx-lm's `QuantizedKVCache` layout) and hands
//! attention dequantized copies of the valid positions.

use mlx_rs::error::Exception;
use mlx_rs::ops::indexing::{IndexOp, TryIndexMutOp};
use mlx_rs::ops::{concatenate, dequantize, quantize, zeros_dtype};
use mlx_rs::Array;
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, Exception>;

/// How a quantized cache stores keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvQuant {
    /// 4 or 8.
    pub bits: i32,
    /// Values per scale and bias (32, 64 or 128; must divide the head dimension).
    pub group_size: i32,
}

impl KvQuant {
    /// `bits`-bit storage with mlx-lm's default group of 64, or 32 when the head dimension
    /// is not a multiple of 64.
    pub fn for_head_dim(bits: i32, head_dim: i32) -> std::result::Result<KvQuant, String> {
        if bits != 4 && bits != 8 {
            return Err(format!("KV-cache bits must be 4 or 8, not {bits}"));
        }
        let group_size = match head_dim {
            d if d % 64 == 0 => 64,
            d if d % 32 == 0 => 32,
            d => {
                return Err(format!(
                    "KV-cache quantization needs a head dimension divisible by 32; this \
                     model's is {d}"
                ))
            }
        };
        Ok(KvQuant { bits, group_size })
    }
}

/// One layer's keys and values.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Keys: one array, or the quantized triplet.
    keys: Vec<Array>,
    values: Vec<Array>,
    offset: usize,
    quant: Option<KvQuant>,
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

    /// An empty cache storing keys and values as computed, or quantized as `quant` says.
    pub fn with_quant(quant: Option<KvQuant>) -> Self {
        KvCache {
            quant,
            ..Self::default()
        }
    }

    /// A cache that keeps nothing: attention over one whole sequence, as in training.
    pub fn discarding() -> Self {
        KvCache {
            discard: true,
            ..Self::default()
        }
    }

    /// A list of empty caches, one per layer.
    pub fn for_layers(n_layers: usize, quant: Option<KvQuant>) -> Vec<KvCache> {
        (0..n_layers).map(|_| KvCache::with_quant(quant)).collect()
    }

    /// Number of valid positions.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// How keys and values are stored (`None`: as computed).
    pub fn quant(&self) -> Option<KvQuant> {
        self.quant
    }

    /// Positions that fit before the next growth step.
    pub fn capacity(&self) -> usize {
        self.keys.first().map_or(0, |k| k.shape()[2] as usize)
    }

    /// Appends `keys` and `values` (`[B, H, L, D]`) at `offset` and returns all valid keys and
    /// values, including the new ones.
    pub fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        if self.discard {
            return Ok((keys.clone(), values.clone()));
        }
        let new_k = self.encode(keys)?;
        let new_v = self.encode(values)?;
        let start = self.offset;
        let end = start + keys.shape()[2] as usize;
        if end > self.capacity() {
            self.grow(&new_k, &new_v, end)?;
        }
        let (s, e) = (start as i32, end as i32);
        for (stored, new) in self.keys.iter_mut().zip(&new_k) {
            stored.try_index_mut((.., .., s..e, ..), new)?;
        }
        for (stored, new) in self.values.iter_mut().zip(&new_v) {
            stored.try_index_mut((.., .., s..e, ..), new)?;
        }
        self.offset = end;
        let dtype = keys.dtype();
        Ok((
            self.decode(&self.keys, dtype)?,
            self.decode(&self.values, dtype)?,
        ))
    }

    /// A cache holding `keys` and `values` — each one array `[B, H, L, D]`, or the quantized
    /// triplet when `quant` is given — of which the first `offset` positions are valid.
    pub fn from_parts(
        keys: Vec<Array>,
        values: Vec<Array>,
        offset: usize,
        quant: Option<KvQuant>,
    ) -> KvCache {
        KvCache {
            keys,
            values,
            offset,
            quant,
            discard: false,
        }
    }

    /// The stored keys and values of the valid positions, as kept (one array each, or the
    /// quantized triplets); `None` when empty.
    pub fn parts(&self) -> Option<(Vec<Array>, Vec<Array>)> {
        if self.keys.is_empty() {
            return None;
        }
        let end = self.offset as i32;
        let valid = |xs: &[Array]| xs.iter().map(|x| x.index((.., .., ..end, ..))).collect();
        Some((valid(&self.keys), valid(&self.values)))
    }

    /// Forgets the newest `n` positions (at most all of them); returns how many were dropped.
    pub fn trim(&mut self, n: usize) -> usize {
        let n = n.min(self.offset);
        self.offset -= n;
        n
    }

    /// Bytes held by the cache's storage (capacity, not only valid positions).
    pub fn nbytes(&self) -> usize {
        self.arrays().map(Array::nbytes).sum()
    }

    /// The arrays to evaluate so the cache holds computed data rather than a graph.
    pub fn arrays(&self) -> impl Iterator<Item = &Array> {
        self.keys.iter().chain(self.values.iter())
    }

    /// `x` as stored: itself, or its quantized triplet.
    fn encode(&self, x: &Array) -> Result<Vec<Array>> {
        Ok(match self.quant {
            None => vec![x.clone()],
            Some(q) => {
                let (w, scales, biases) = quantize(x, q.group_size, q.bits)?;
                vec![w, scales, biases]
            }
        })
    }

    /// The valid positions of `stored`, as arrays of `dtype` for attention.
    fn decode(&self, stored: &[Array], dtype: mlx_rs::Dtype) -> Result<Array> {
        let end = self.offset as i32;
        let valid: Vec<Array> = stored
            .iter()
            .map(|x| x.index((.., .., ..end, ..)))
            .collect();
        match (self.quant, valid.as_slice()) {
            (Some(q), [w, scales, biases]) => {
                dequantize(w, scales, biases, q.group_size, q.bits)?.as_dtype(dtype)
            }
            (_, [x]) => Ok(x.clone()),
            _ => unreachable!("a cache stores one array or a quantized triplet"),
        }
    }

    fn grow(&mut self, keys: &[Array], values: &[Array], needed: usize) -> Result<()> {
        let steps = needed.div_ceil(Self::STEP) - self.capacity() / Self::STEP;
        let extra = (steps * Self::STEP) as i32;
        let fresh = |like: &Array| -> Result<Array> {
            let s = like.shape();
            zeros_dtype(&[s[0], s[1], extra, s[3]], like.dtype())
        };
        let extend = |stored: &mut Vec<Array>, like: &[Array]| -> Result<()> {
            let grown: Vec<Array> = if stored.is_empty() {
                like.iter().map(fresh).collect::<Result<_>>()?
            } else {
                stored
                    .iter()
                    .zip(like)
                    .map(|(s, l)| concatenate(&[s.clone(), fresh(l)?], 2))
                    .collect::<Result<_>>()?
            };
            *stored = grown;
            Ok(())
        };
        extend(&mut self.keys, keys)?;
        extend(&mut self.values, values)
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

    #[test]
    fn a_quantized_cache_returns_close_values_in_a_fraction_of_the_bytes() {
        let x = |start: i32, len: i32| {
            let n = len * 64;
            (arange::<_, f32>(start * 64, start * 64 + n, None).unwrap() / 1000.0)
                .sin()
                .unwrap()
                .reshape(&[1, 1, len, 64])
                .unwrap()
        };
        for bits in [8, 4] {
            let quant = KvQuant::for_head_dim(bits, 64).unwrap();
            let mut dense = KvCache::new();
            let mut packed = KvCache::with_quant(Some(quant));
            for (start, len) in [(0, 20), (20, 1), (21, 5)] {
                dense
                    .update_and_fetch(&x(start, len), &x(start, len))
                    .unwrap();
                let (k, v) = packed
                    .update_and_fetch(&x(start, len), &x(start, len))
                    .unwrap();
                assert_eq!(k.shape(), &[1, 1, start + len, 64]);
                let error = (&k - x(0, start + len)).abs().unwrap().max(None).unwrap();
                let bound = if bits == 8 { 0.01 } else { 0.1 };
                assert!(
                    error.item_cast::<f32>() < bound,
                    "{bits} bits: {}",
                    error.item_cast::<f32>()
                );
                assert!(v.all_close(&k, None, None, None).unwrap());
            }
            assert!(packed.nbytes() * 3 < dense.nbytes(), "{bits} bits");
            assert_eq!(packed.trim(6), 6);
            let (parts, _) = packed.parts().unwrap();
            assert_eq!(parts.len(), 3);
            assert_eq!(parts[0].shape()[2], 20);
        }
        assert!(KvQuant::for_head_dim(8, 16).is_err());
        assert!(KvQuant::for_head_dim(3, 64).is_err());
    }
}
