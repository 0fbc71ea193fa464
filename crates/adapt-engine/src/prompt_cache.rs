//! A sequence's KV cache on disk in mlx-lm's prompt-cache format, so either tool can load
//! what the other saved: one safetensors file with, for layer `i`, `"{i}.0"` (keys),
//! `"{i}.1"` (values) and `"{i}.2"` (the offset, an int32 scalar), and string metadata
//! `"0.<key>"` (free-form: ours holds the cached token ids), `"1.{i}"` = `"KVCache"` and the
//! scalar list `"2.0"` = `""`, `"2.{j}.0"` = `"{i}.2"`, `"2.{j}.1"` = `"scalar"`. A quantized
//! layer (`"1.{i}"` = `"QuantizedKVCache"`) holds `"{i}.0.{0,1,2}"` (packed keys, scales,
//! biases), `"{i}.1.{0,1,2}"` (values), and the scalars `"{i}.2"` (offset), `"{i}.3"` (group
//! size) and `"{i}.4"` (bits). Only the valid positions are written; the file is written
//! beside its destination and renamed into place.

use std::collections::HashMap;
use std::path::Path;

use mlx_rs::{Array, Dtype};

use crate::cache::{KvCache, KvQuant};
use crate::error::{EngineError, Result};
use crate::generate::SequenceCache;

/// The metadata key holding the cached token ids (comma-separated).
pub const TOKENS_KEY: &str = "adapt.tokens";

/// Writes `cache` to `path` with `metadata` (plus the token ids); returns the file's size.
pub fn save(path: &Path, cache: &SequenceCache, metadata: &HashMap<String, String>) -> Result<u64> {
    let mut arrays: Vec<(String, Array)> = Vec::new();
    let mut meta: HashMap<String, String> = HashMap::new();
    for (k, v) in metadata {
        meta.insert(format!("0.{k}"), v.clone());
    }
    let tokens: Vec<String> = cache.tokens.iter().map(u32::to_string).collect();
    meta.insert(format!("0.{TOKENS_KEY}"), tokens.join(","));
    meta.insert("2.0".into(), String::new());
    let mut scalars = 0;
    let mut scalar = |meta: &mut HashMap<String, String>, key: String| {
        scalars += 1;
        meta.insert(format!("2.{scalars}.0"), key);
        meta.insert(format!("2.{scalars}.1"), "scalar".into());
    };
    for (i, layer) in cache.layers.iter().enumerate() {
        let (k, v) = layer
            .parts()
            .ok_or_else(|| EngineError::InvalidRequest("an empty cache cannot be saved".into()))?;
        arrays.push((format!("{i}.2"), Array::from_int(layer.offset() as i32)));
        scalar(&mut meta, format!("{i}.2"));
        match layer.quant() {
            None => {
                arrays.push((format!("{i}.0"), k[0].clone()));
                arrays.push((format!("{i}.1"), v[0].clone()));
                meta.insert(format!("1.{i}"), "KVCache".into());
            }
            Some(q) => {
                for (part, xs) in [(0, &k), (1, &v)] {
                    for (j, x) in xs.iter().enumerate() {
                        arrays.push((format!("{i}.{part}.{j}"), x.clone()));
                    }
                }
                arrays.push((format!("{i}.3"), Array::from_int(q.group_size)));
                arrays.push((format!("{i}.4"), Array::from_int(q.bits)));
                scalar(&mut meta, format!("{i}.3"));
                scalar(&mut meta, format!("{i}.4"));
                meta.insert(format!("1.{i}"), "QuantizedKVCache".into());
            }
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.partial-{}.safetensors",
        std::process::id()
    ));
    let write_error = |message: String| EngineError::Write {
        path: path.to_path_buf(),
        message,
    };
    Array::save_safetensors(arrays.iter().map(|(n, a)| (n, a)), &meta, &tmp)
        .map_err(|e| write_error(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| write_error(e.to_string()))?;
    Ok(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
}

/// Reads a prompt cache written by [`save`] or by mlx-lm (`KVCache` layers); the token ids
/// come from our metadata (empty when mlx-lm wrote the file). Returns the free-form metadata
/// too.
pub fn load(path: &Path) -> Result<(SequenceCache, HashMap<String, String>)> {
    let bad = |m: String| EngineError::invalid_model(path, m);
    let (mut arrays, meta) = Array::load_safetensors_with_metadata(path)
        .map_err(|e| bad(format!("not a readable prompt cache: {e}")))?;
    let mut layers = Vec::new();
    for i in 0.. {
        let quantized = match meta.get(&format!("1.{i}")).map(String::as_str) {
            None => break,
            Some("KVCache") => false,
            Some("QuantizedKVCache") => true,
            Some(other) => {
                return Err(bad(format!(
                    "layer {i} is a {other}; only KVCache and QuantizedKVCache layers are \
                     supported"
                )))
            }
        };
        let mut take = |name: String| {
            arrays
                .remove(&name)
                .ok_or_else(|| bad(format!("tensor '{name}' is missing")))
        };
        let mut int = |name: String| -> Result<i32> {
            let a = take(name.clone())?;
            if a.size() != 1 {
                return Err(bad(format!(
                    "tensor '{name}' should hold one number, not {}",
                    a.size()
                )));
            }
            Ok(a.as_dtype(Dtype::Int32)?.item_cast::<i32>())
        };
        let offset = int(format!("{i}.2"))?.max(0) as usize;
        let (keys, values, quant) = if quantized {
            let quant = KvQuant {
                group_size: int(format!("{i}.3"))?,
                bits: int(format!("{i}.4"))?,
            };
            let mut triplet = |part: u8| -> Result<Vec<Array>> {
                (0..3).map(|j| take(format!("{i}.{part}.{j}"))).collect()
            };
            (triplet(0)?, triplet(1)?, Some(quant))
        } else {
            (
                vec![take(format!("{i}.0"))?],
                vec![take(format!("{i}.1"))?],
                None,
            )
        };
        let agree = keys
            .iter()
            .zip(&values)
            .all(|(k, v)| k.shape() == v.shape())
            && keys
                .iter()
                .all(|k| k.ndim() == 4 && offset <= k.shape()[2] as usize);
        if !agree {
            return Err(bad(format!("layer {i}: keys, values and offset disagree")));
        }
        layers.push(KvCache::from_parts(keys, values, offset, quant));
    }
    if layers.is_empty() {
        return Err(bad("it holds no layers".into()));
    }
    let mut metadata: HashMap<String, String> = meta
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("0.")?.to_string(), v)))
        .collect();
    let tokens = match metadata.remove(TOKENS_KEY) {
        Some(t) if !t.is_empty() => t
            .split(',')
            .map(|x| x.parse::<u32>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                bad(format!(
                    "metadata '{TOKENS_KEY}' is not a list of token ids"
                ))
            })?,
        _ => Vec::new(),
    };
    if !tokens.is_empty() && layers.iter().any(|l| l.offset() != tokens.len()) {
        return Err(bad(
            "the token list and the cached positions disagree".into()
        ));
    }
    Ok((SequenceCache { tokens, layers }, metadata))
}
