//! Decoding ggml's block formats to `f32`, written from the formats' descriptions (llama.cpp's
//! `ggml-common.h` / `ggml-quants.c`, the `gguf` Python package's `quants.py`).
//!
//! Every quantized type Adapt reads is *affine in groups*: within a group of 16 or 32
//! consecutive values of a row, `value = scale · q + bias` with an unsigned integer `q` of a
//! few bits and `f32` scale and bias (products of the block's f16 super-scale and its small
//! integer sub-scales). [`decode_affine`] yields that form — which maps exactly onto MLX's
//! affine quantization where the group is 32 — and [`dequantize`] the values, computed in
//! `f32` in the same order as the references so the results are bit-identical.
//!
//! | type | block | bytes | group | bits | value |
//! |------|-------|-------|-------|------|-------|
//! | Q4_0 | 32 | 18 | 32 | 4 | `d·(q − 8)` |
//! | Q4_1 | 32 | 20 | 32 | 4 | `d·q + m` |
//! | Q5_0 | 32 | 22 | 32 | 5 | `d·(q − 16)` |
//! | Q5_1 | 32 | 24 | 32 | 5 | `d·q + m` |
//! | Q8_0 | 32 | 34 | 32 | 8 | `d·(q − 128)` (stored as `i8`) |
//! | Q2_K | 256 | 84 | 16 | 2 | `d·sc·q − dmin·m` (4-bit `sc`, `m`) |
//! | Q3_K | 256 | 110 | 16 | 3 | `d·sc·(q − 4)` (6-bit signed `sc`) |
//! | Q4_K | 256 | 144 | 32 | 4 | `d·sc·q − dmin·m` (6-bit `sc`, `m`) |
//! | Q5_K | 256 | 176 | 32 | 5 | `d·sc·q − dmin·m` (6-bit `sc`, `m`) |
//! | Q6_K | 256 | 210 | 16 | 6 | `d·sc·(q − 32)` (8-bit signed `sc`) |

use crate::GgmlType;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The type has no decoder here (importance quants, ternary, FP4, integer types, …).
    #[error(
        "{0} tensors cannot be read by Adapt (it reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, \
         Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K); use a GGUF file quantized to one of those"
    )]
    Unsupported(GgmlType),
    /// The byte count is not a whole number of blocks, or the output does not match it.
    #[error("{bytes} bytes of {ty} do not hold {values} values")]
    Size {
        /// The type.
        ty: GgmlType,
        /// Bytes given.
        bytes: usize,
        /// Values asked for.
        values: usize,
    },
}

/// The affine form of a quantized type: groups of `group` values share a scale and a bias,
/// each value an unsigned integer of `bits` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Affine {
    /// Values per scale / bias (16 or 32).
    pub group: usize,
    /// Bits of each integer (2 to 8).
    pub bits: u32,
}

/// One block's decoder: fills `q` (one entry per value), `scales` and `biases` (one per group).
type BlockFn = fn(&[u8], &mut [u8], &mut [f32], &mut [f32]);

/// (type, group, bits, decoder) for every quantized type Adapt reads.
const AFFINE: &[(GgmlType, usize, u32, BlockFn)] = &[
    (GgmlType::Q4_0, 32, 4, q4_0),
    (GgmlType::Q4_1, 32, 4, q4_1),
    (GgmlType::Q5_0, 32, 5, q5_0),
    (GgmlType::Q5_1, 32, 5, q5_1),
    (GgmlType::Q8_0, 32, 8, q8_0),
    (GgmlType::Q2_K, 16, 2, q2_k),
    (GgmlType::Q3_K, 16, 3, q3_k),
    (GgmlType::Q4_K, 32, 4, q4_k),
    (GgmlType::Q5_K, 32, 5, q5_k),
    (GgmlType::Q6_K, 16, 6, q6_k),
];

impl GgmlType {
    /// The tensor types Adapt reads: the float types and every quantized type with a decoder.
    pub const DECODABLE: &'static [GgmlType] = &[
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];

    /// Whether Adapt can decode tensors of this type.
    pub fn is_decodable(self) -> bool {
        Self::DECODABLE.contains(&self)
    }

    /// The affine form of a quantized type Adapt reads; `None` for float and other types.
    pub fn affine(self) -> Option<Affine> {
        AFFINE.iter().find(|row| row.0 == self).map(|row| Affine {
            group: row.1,
            bits: row.2,
        })
    }
}

/// An IEEE half-precision number's value (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match exp {
        0 => {
            // Zero or subnormal: man · 2^-24, exact in f32.
            let v = man as f32 * (1.0 / 16_777_216.0);
            if sign != 0 {
                -v
            } else {
                v
            }
        }
        31 => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

/// A bfloat16 number's value (exact).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

fn blocks(ty: GgmlType, bytes: usize, values: usize) -> Result<usize, DecodeError> {
    let size = DecodeError::Size { ty, bytes, values };
    let (block, per) = match (ty.block_size(), ty.bytes_per_block()) {
        (Some(b), Some(p)) => (b as usize, p as usize),
        _ => return Err(DecodeError::Unsupported(ty)),
    };
    if bytes % per != 0 || bytes / per * block != values {
        return Err(size);
    }
    Ok(bytes / per)
}

/// Decodes `bytes` (whole blocks of a quantized type Adapt reads) into the affine form:
/// `q` gets one integer per value, `scales` and `biases` one entry per group
/// ([`GgmlType::affine`]), so that `value[i] = scales[i / group] · q[i] + biases[i / group]`.
pub fn decode_affine(
    ty: GgmlType,
    bytes: &[u8],
    q: &mut [u8],
    scales: &mut [f32],
    biases: &mut [f32],
) -> Result<(), DecodeError> {
    let Some(&(_, group, _, decode)) = AFFINE.iter().find(|row| row.0 == ty) else {
        return Err(DecodeError::Unsupported(ty));
    };
    let n = blocks(ty, bytes.len(), q.len())?;
    if scales.len() * group != q.len() || biases.len() != scales.len() {
        return Err(DecodeError::Size {
            ty,
            bytes: bytes.len(),
            values: q.len(),
        });
    }
    if n == 0 {
        return Ok(());
    }
    let (per, block) = (bytes.len() / n, q.len() / n);
    let groups = block / group;
    for b in 0..n {
        decode(
            &bytes[b * per..(b + 1) * per],
            &mut q[b * block..(b + 1) * block],
            &mut scales[b * groups..(b + 1) * groups],
            &mut biases[b * groups..(b + 1) * groups],
        );
    }
    Ok(())
}

/// Decodes `bytes` of type `ty` (whole blocks; any type in [`GgmlType::DECODABLE`]) into
/// `out`, one `f32` per value.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), DecodeError> {
    blocks(ty, bytes.len(), out.len())?;
    let halves = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F16 => out
            .iter_mut()
            .zip(halves)
            .for_each(|(o, h)| *o = f16_to_f32(h)),
        GgmlType::BF16 => out
            .iter_mut()
            .zip(halves)
            .for_each(|(o, h)| *o = bf16_to_f32(h)),
        _ => {
            let Some(Affine { group, .. }) = ty.affine() else {
                return Err(DecodeError::Unsupported(ty));
            };
            // Whole blocks at a time, so the scratch stays small.
            let (block, per) = (
                ty.block_size().unwrap_or(1) as usize,
                ty.bytes_per_block().unwrap_or(1) as usize,
            );
            let mut q = vec![0u8; block];
            let mut scales = vec![0f32; block / group];
            let mut biases = vec![0f32; block / group];
            for (src, dst) in bytes.chunks_exact(per).zip(out.chunks_exact_mut(block)) {
                decode_affine(ty, src, &mut q, &mut scales, &mut biases)?;
                for (i, o) in dst.iter_mut().enumerate() {
                    let g = i / group;
                    *o = scales[g] * f32::from(q[i]) + biases[g];
                }
            }
        }
    }
    Ok(())
}

fn half(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// The 16 low / high nibbles of `qs` as 32 values: low nibbles first.
fn nibbles(qs: &[u8], q: &mut [u8]) {
    for j in 0..16 {
        q[j] = qs[j] & 0x0f;
        q[j + 16] = qs[j] >> 4;
    }
}

/// Adds the fifth bit of each of 32 values from the little-endian mask `qh`.
fn fifth_bits(qh: u32, q: &mut [u8]) {
    for (j, v) in q.iter_mut().enumerate().take(32) {
        *v |= (((qh >> j) & 1) as u8) << 4;
    }
}

fn q4_0(b: &[u8], q: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    let d = half(b, 0);
    nibbles(&b[2..18], q);
    (s[0], m[0]) = (d, -8.0 * d);
}

fn q4_1(b: &[u8], q: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    (s[0], m[0]) = (half(b, 0), half(b, 2));
    nibbles(&b[4..20], q);
}

fn q5_0(b: &[u8], q: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    let d = half(b, 0);
    nibbles(&b[6..22], q);
    fifth_bits(u32::from_le_bytes([b[2], b[3], b[4], b[5]]), q);
    (s[0], m[0]) = (d, -16.0 * d);
}

fn q5_1(b: &[u8], q: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    (s[0], m[0]) = (half(b, 0), half(b, 2));
    nibbles(&b[8..24], q);
    fifth_bits(u32::from_le_bytes([b[4], b[5], b[6], b[7]]), q);
}

fn q8_0(b: &[u8], q: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    let d = half(b, 0);
    for (v, &x) in q.iter_mut().zip(&b[2..34]) {
        // i8 → offset binary: x + 128.
        *v = x ^ 0x80;
    }
    (s[0], m[0]) = (d, -128.0 * d);
}

/// Value `e` of a 256-value block stored as 2-bit fields: half `e / 128`, shift
/// `2 · (e % 128 / 32)`, byte `e % 32` of the half's 32 bytes.
fn crumb(qs: &[u8], e: usize) -> u8 {
    let (h, r) = (e / 128, e % 128);
    (qs[h * 32 + r % 32] >> (2 * (r / 32))) & 3
}

fn q2_k(b: &[u8], q: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    let (sc, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (half(b, 80), half(b, 82));
    for (e, v) in q.iter_mut().enumerate() {
        *v = crumb(qs, e);
    }
    for g in 0..16 {
        s[g] = d * f32::from(sc[g] & 0x0f);
        m[g] = -(dmin * f32::from(sc[g] >> 4));
    }
}

fn q3_k(b: &[u8], q: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    let (hmask, qs, sc) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = half(b, 108);
    for (e, v) in q.iter_mut().enumerate() {
        // The high bit set means no offset: q = low + 4·high, value = scale · (q − 4).
        let high = (hmask[e % 32] >> (e / 32)) & 1;
        *v = crumb(qs, e) | (high << 2);
    }
    for g in 0..16 {
        let low = (sc[g % 8] >> (4 * (g / 8))) & 0x0f;
        let high = (sc[8 + g % 4] >> (2 * (g / 4))) & 0x03;
        let scale = d * f32::from(((low | (high << 4)) as i8) - 32);
        s[g] = scale;
        m[g] = -4.0 * scale;
    }
}

/// The eight 6-bit scales and minimums of a Q4_K / Q5_K block (12 packed bytes).
fn k_scales(p: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = p[j] & 0x3f;
        mn[j] = p[j + 4] & 0x3f;
        sc[j + 4] = (p[j + 8] & 0x0f) | ((p[j] >> 2) & 0x30);
        mn[j + 4] = (p[j + 8] >> 4) | ((p[j + 4] >> 2) & 0x30);
    }
    (sc, mn)
}

fn k_affine(b: &[u8], s: &mut [f32], m: &mut [f32]) {
    let (d, dmin) = (half(b, 0), half(b, 2));
    let (sc, mn) = k_scales(&b[4..16]);
    for g in 0..8 {
        s[g] = d * f32::from(sc[g]);
        m[g] = -(dmin * f32::from(mn[g]));
    }
}

/// The 4-bit parts of a Q4_K / Q5_K block: groups `2c` and `2c + 1` are the low and high
/// nibbles of bytes `32c .. 32c + 32`.
fn k_nibbles(qs: &[u8], q: &mut [u8]) {
    for (e, v) in q.iter_mut().enumerate() {
        let (g, l) = (e / 32, e % 32);
        *v = (qs[(g / 2) * 32 + l] >> (4 * (g % 2))) & 0x0f;
    }
}

fn q4_k(b: &[u8], q: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    k_affine(b, s, m);
    k_nibbles(&b[16..144], q);
}

fn q5_k(b: &[u8], q: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    k_affine(b, s, m);
    let qh = &b[16..48];
    k_nibbles(&b[48..176], q);
    for (e, v) in q.iter_mut().enumerate() {
        *v |= ((qh[e % 32] >> (e / 32)) & 1) << 4;
    }
}

fn q6_k(b: &[u8], q: &mut [u8], s: &mut [f32], m: &mut [f32]) {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = half(b, 208);
    for (e, v) in q.iter_mut().enumerate() {
        let (h, r) = (e / 128, e % 128);
        let low = (ql[h * 64 + r % 64] >> (4 * (r / 64))) & 0x0f;
        let high = (qh[h * 32 + r % 32] >> (2 * (r / 32))) & 0x03;
        *v = low | (high << 4);
    }
    for g in 0..16 {
        let scale = d * f32::from(sc[g] as i8);
        s[g] = scale;
        m[g] = -32.0 * scale;
    }
}

#[cfg(test)]
mod tests;
