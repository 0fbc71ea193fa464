//! The tensors of a GGUF file, under their GGUF names, read by `adapt_gguf` one tensor and a
//! run of rows at a time (never the whole model in `f32`) and handed to MLX:
//!
//! - float tensors (F32, F16, BF16) stay dense;
//! - quantized tensors whose structure is affine in groups of 32 (Q4_0, Q4_1, Q5_0, Q5_1,
//!   Q8_0, Q4_K, Q5_K) map *exactly* onto MLX's affine quantization, group 32: 4-bit integers
//!   as MLX 4-bit, 5- and 8-bit ones as MLX 8-bit, each group's scale and bias as ggml
//!   defines them (`d·sc` and `−dmin·m` for the K-quants);
//! - the K-quants with groups of 16 (Q2_K, Q3_K, Q6_K) are decoded to `f32` and quantized
//!   again by MLX, group 32: Q2_K and Q3_K to 4 bits, Q6_K to 8 bits;
//! - with a format that dequantizes (the CPU backend), every quantized tensor is decoded
//!   straight to dense weights instead.
//!
//! Scales, biases and dense weights are converted to the format's float dtype as they are
//! read; without a format, dense tensors keep the file's dtype and scales are `f16`.

use std::collections::HashMap;
use std::ops::Range;

use adapt_gguf::quants::Affine;
use adapt_gguf::{AffineRows, GgmlType, GgufFile, TensorData};
use mlx_rs::ops::{concatenate, quantize};
use mlx_rs::{Array, Dtype};

use crate::error::Result;
use crate::models::WeightFormat;

/// Values decoded at a time (16 MiB of `f32`): the most a tensor's decoding holds beyond
/// its MLX form.
const CHUNK_VALUES: usize = 1 << 22;

/// Every tensor of `gguf` by its GGUF name; quantized ones as MLX triplets (`NAME.weight`,
/// `NAME.scales`, `NAME.biases`), group 32. `format`: the dtype and representation to produce
/// (see the module documentation); `None` keeps the file's own.
pub fn read_tensors(
    gguf: &GgufFile,
    format: Option<WeightFormat>,
) -> Result<HashMap<String, Array>> {
    let mut arrays = HashMap::new();
    for info in gguf.tensors() {
        let mut data = gguf.tensor_data(info)?;
        let shape: Vec<i32> = info.dims.iter().rev().map(|&d| d as i32).collect();
        match info.ggml_type.affine() {
            None => {
                let dense = read_dense(&mut data, format.map(|f| f.dtype))?;
                arrays.insert(info.name.clone(), dense.reshape(&shape)?);
            }
            Some(_) if format.is_some_and(|f| f.dequantize) => {
                let dtype = format.map_or(Dtype::Float32, |f| f.dtype);
                let dense = read_dense(&mut data, Some(dtype))?;
                arrays.insert(info.name.clone(), dense.reshape(&shape)?);
            }
            Some(affine) => {
                let scales_dtype = format.map_or(Dtype::Float16, |f| f.dtype);
                let [w, s, b] = read_quantized(&mut data, affine, scales_dtype)?;
                let stem = info.name.strip_suffix(".weight").unwrap_or(&info.name);
                let lead = &shape[..shape.len() - 1];
                let with_last = |a: &Array| -> Result<Array> {
                    let mut s = lead.to_vec();
                    s.push(*a.shape().last().unwrap_or(&0));
                    Ok(a.reshape(&s)?)
                };
                arrays.insert(info.name.clone(), with_last(&w)?);
                arrays.insert(format!("{stem}.scales"), with_last(&s)?);
                arrays.insert(format!("{stem}.biases"), with_last(&b)?);
            }
        }
    }
    Ok(arrays)
}

/// Runs of whole rows holding about [`CHUNK_VALUES`] values each.
fn chunks(data: &TensorData) -> impl Iterator<Item = Range<usize>> {
    let (rows, per) = (data.rows(), (CHUNK_VALUES / data.row_len().max(1)).max(1));
    (0..rows.div_ceil(per)).map(move |i| i * per..((i + 1) * per).min(rows))
}

/// Joins row chunks (each `[rows, n]`, already evaluated) along the rows.
fn join(mut parts: Vec<Array>) -> Result<Array> {
    let joined = if parts.len() == 1 {
        parts.remove(0)
    } else {
        let joined = concatenate(&parts, 0)?;
        joined.eval()?;
        joined
    };
    Ok(joined)
}

/// The tensor as dense `[rows, row_len]` values in `dtype`; `None`: the stored float dtype
/// (F16 and BF16 bits are handed to MLX as they are).
fn read_dense(data: &mut TensorData, dtype: Option<Dtype>) -> Result<Array> {
    let ty = data.info().ggml_type;
    let stored = match ty {
        GgmlType::F16 => Some(Dtype::Float16),
        GgmlType::BF16 => Some(Dtype::Bfloat16),
        _ => None,
    };
    let n = data.row_len() as i32;
    let mut parts = Vec::new();
    let (mut raw, mut values) = (Vec::new(), Vec::new());
    for rows in chunks(data) {
        let part = match stored.filter(|s| dtype.is_none_or(|d| d == *s)) {
            Some(half) => {
                data.read_raw(rows.clone(), &mut raw)?;
                let bits: Vec<u16> = raw
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                Array::from_slice(&bits, &[rows.len() as i32, n]).view_dtype(half)?
            }
            None => {
                data.read_f32(rows.clone(), &mut values)?;
                let a = Array::from_slice(&values, &[rows.len() as i32, n]);
                match dtype {
                    Some(d) if d != Dtype::Float32 => a.as_dtype(d)?,
                    _ => a,
                }
            }
        };
        part.eval()?;
        parts.push(part);
    }
    join(parts)
}

/// The tensor as an MLX triplet (packed weights, scales, biases in `dtype`), group 32.
fn read_quantized(data: &mut TensorData, affine: Affine, dtype: Dtype) -> Result<[Array; 3]> {
    let bits = if affine.bits <= 4 { 4 } else { 8 };
    let n = data.row_len() as i32;
    let mut parts: [Vec<Array>; 3] = Default::default();
    let (mut rows_affine, mut values) = (AffineRows::default(), Vec::new());
    for rows in chunks(data) {
        let r = rows.len() as i32;
        let (w, s, b) = if affine.group == 32 {
            data.read_affine(rows, &mut rows_affine)?;
            let AffineRows { q, scales, biases } = &rows_affine;
            (
                Array::from_slice(&pack(q, bits), &[r, n * bits / 32]),
                Array::from_slice(scales, &[r, n / 32]),
                Array::from_slice(biases, &[r, n / 32]),
            )
        } else {
            data.read_f32(rows, &mut values)?;
            quantize(Array::from_slice(&values, &[r, n]), 32, bits)?
        };
        let (s, b) = (s.as_dtype(dtype)?, b.as_dtype(dtype)?);
        mlx_rs::transforms::eval([&w, &s, &b])?;
        for (list, a) in parts.iter_mut().zip([w, s, b]) {
            list.push(a);
        }
    }
    let [w, s, b] = parts;
    Ok([join(w)?, join(s)?, join(b)?])
}

/// Packs unsigned integers of at most `bits` (4 or 8) bits the way MLX stores them: value `k`
/// of each `u32` at bits `k·bits` upwards.
fn pack(q: &[u8], bits: i32) -> Vec<u32> {
    let per = (32 / bits) as usize;
    q.chunks_exact(per)
        .map(|word| {
            word.iter().enumerate().fold(0u32, |acc, (k, &v)| {
                acc | (u32::from(v) << (k as i32 * bits))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::pack;
    use mlx_rs::ops::dequantize;
    use mlx_rs::Array;

    #[test]
    fn packing_matches_mlx_dequantize() {
        for bits in [4, 8] {
            let q: Vec<u8> = (0..64).map(|i| ((i * 7) % (1 << bits)) as u8).collect();
            let w = Array::from_slice(&pack(&q, bits), &[1, 64 * bits / 32]);
            let scales = Array::from_slice(&[0.5f32, 2.0], &[1, 2]);
            let biases = Array::from_slice(&[-1.0f32, 3.0], &[1, 2]);
            let got = dequantize(&w, &scales, &biases, 32, bits).unwrap();
            let want: Vec<f32> = q
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if i < 32 {
                        0.5 * v as f32 - 1.0
                    } else {
                        2.0 * v as f32 + 3.0
                    }
                })
                .collect();
            assert_eq!(got.as_slice::<f32>(), want.as_slice(), "{bits} bits");
        }
    }
}
