//! Hand-built blocks: each packed here from the format's description (independently of the
//! decoder's indexing), with the values it must decode to.

use super::*;

const ONE: [u8; 2] = 0x3c00u16.to_le_bytes(); // 1.0
const HALF: [u8; 2] = 0x3800u16.to_le_bytes(); // 0.5
const TWO: [u8; 2] = 0x4000u16.to_le_bytes(); // 2.0

fn values(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize(ty, bytes, &mut out).unwrap();
    out
}

#[test]
fn half_and_bfloat_values() {
    assert_eq!(f16_to_f32(0x3c00), 1.0);
    assert_eq!(f16_to_f32(0xc000), -2.0);
    assert_eq!(f16_to_f32(0x7bff), 65504.0);
    assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x8400), -(2f32.powi(-14)));
    assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
    assert!(f16_to_f32(0x7e00).is_nan());
    assert_eq!(bf16_to_f32(0x3f80), 1.0);
    assert_eq!(bf16_to_f32(0xc0a0), -5.0);
}

#[test]
fn q4_0_and_q4_1_split_bytes_into_low_then_high_nibbles() {
    // Byte j holds value j (low nibble) and value j + 16 (high nibble).
    let mut block = TWO.to_vec();
    block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let want: Vec<f32> = (0..32)
        .map(|i| {
            let q = if i < 16 { i } else { 15 - (i - 16) };
            2.0 * (q as f32 - 8.0)
        })
        .collect();
    assert_eq!(values(GgmlType::Q4_0, &block, 32), want);

    let mut block = ONE.to_vec();
    block.extend(HALF); // minimum 0.5
    block.extend((0..16u8).map(|j| j | (j << 4)));
    let want: Vec<f32> = (0..32).map(|i| (i % 16) as f32 + 0.5).collect();
    assert_eq!(values(GgmlType::Q4_1, &block, 32), want);
}

#[test]
fn q5_types_take_the_fifth_bit_from_a_little_endian_mask() {
    let qh: u32 = 0xAAAA_5555; // values 0, 2, 4, … of the first half and odd ones of the second
    let mut block = ONE.to_vec();
    block.extend(qh.to_le_bytes());
    block.extend(std::iter::repeat_n(0x31u8, 16)); // low nibble 1, high nibble 3
    let q = |i: usize| (if i < 16 { 1 } else { 3 }) + 16 * ((qh >> i) & 1);
    let want: Vec<f32> = (0..32).map(|i| q(i) as f32 - 16.0).collect();
    assert_eq!(values(GgmlType::Q5_0, &block, 32), want);

    let mut block = HALF.to_vec();
    block.extend(TWO);
    block.extend(qh.to_le_bytes());
    block.extend(std::iter::repeat_n(0x31u8, 16));
    let want: Vec<f32> = (0..32).map(|i| 0.5 * q(i) as f32 + 2.0).collect();
    assert_eq!(values(GgmlType::Q5_1, &block, 32), want);
}

#[test]
fn q8_0_is_signed_bytes_times_the_scale() {
    let mut block = HALF.to_vec();
    let xs: Vec<i8> = (0..32).map(|i| (i * 8 - 128) as i8).collect();
    block.extend(xs.iter().map(|&x| x as u8));
    let want: Vec<f32> = xs.iter().map(|&x| 0.5 * x as f32).collect();
    assert_eq!(values(GgmlType::Q8_0, &block, 32), want);
    let (mut q, mut s, mut b) = ([0u8; 32], [0f32; 1], [0f32; 1]);
    decode_affine(GgmlType::Q8_0, &block, &mut q, &mut s, &mut b).unwrap();
    assert_eq!((q[0], q[16], s[0], b[0]), (0, 128, 0.5, -64.0));
}

/// Packs eight 6-bit scales and minimums as Q4_K / Q5_K store them: entries 0–3 in the low six
/// bits of bytes 0–3 (scales) and 4–7 (minimums); entries 4–7 split into a low nibble in bytes
/// 8–11 (scale low, minimum high) and two high bits on top of bytes 0–7.
fn pack_k_scales(sc: [u8; 8], mn: [u8; 8]) -> [u8; 12] {
    let mut p = [0u8; 12];
    for j in 0..4 {
        p[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        p[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        p[j + 8] = (sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4);
    }
    p
}

#[test]
fn q4_k_and_q5_k_groups_of_32_with_six_bit_scales_and_minimums() {
    let sc = [1, 2, 63, 4, 17, 33, 48, 62];
    let mn = [0, 5, 9, 63, 16, 31, 47, 1];
    // Byte 32c + l holds value l of group 2c (low nibble) and of group 2c + 1 (high nibble).
    let nib = |g: usize, l: usize| ((g * 3 + l) % 16) as u8;
    let mut qs = [0u8; 128];
    for c in 0..4 {
        for l in 0..32 {
            qs[32 * c + l] = nib(2 * c, l) | (nib(2 * c + 1, l) << 4);
        }
    }
    let mut block = HALF.to_vec(); // d
    block.extend(TWO); // dmin
    block.extend(pack_k_scales(sc, mn));
    block.extend(qs);
    let value = |e: usize, q: u8| {
        let g = e / 32;
        0.5 * sc[g] as f32 * q as f32 - 2.0 * mn[g] as f32
    };
    let want: Vec<f32> = (0..256).map(|e| value(e, nib(e / 32, e % 32))).collect();
    assert_eq!(values(GgmlType::Q4_K, &block, 256), want);

    // Q5_K: bit g of byte l of the 32-byte mask is the fifth bit of value l of group g.
    let mut block5 = block[..16].to_vec();
    let qh: Vec<u8> = (0..32u8).map(|l| l.wrapping_mul(37)).collect();
    block5.extend(&qh);
    block5.extend(qs);
    let want: Vec<f32> = (0..256)
        .map(|e| {
            let high = (qh[e % 32] >> (e / 32)) & 1;
            value(e, nib(e / 32, e % 32) | (high << 4))
        })
        .collect();
    assert_eq!(values(GgmlType::Q5_K, &block5, 256), want);
}

/// 2-bit fields of 256 values: value `128h + 32j + l` sits at bits `2j` of byte `32h + l`.
fn pack_crumbs(q: impl Fn(usize) -> u8) -> [u8; 64] {
    let mut qs = [0u8; 64];
    for h in 0..2 {
        for j in 0..4 {
            for l in 0..32 {
                qs[32 * h + l] |= (q(128 * h + 32 * j + l) & 3) << (2 * j);
            }
        }
    }
    qs
}

#[test]
fn q2_k_groups_of_16_with_four_bit_scales_and_minimums() {
    let q = |e: usize| ((e * 7) % 4) as u8;
    let scales: Vec<u8> = (0..16u8).map(|g| (g % 16) | ((15 - g) << 4)).collect();
    let mut block = scales.clone();
    block.extend(pack_crumbs(q));
    block.extend(HALF);
    block.extend(ONE);
    let want: Vec<f32> = (0..256)
        .map(|e| {
            let s = scales[e / 16];
            0.5 * (s & 15) as f32 * q(e) as f32 - (s >> 4) as f32
        })
        .collect();
    assert_eq!(values(GgmlType::Q2_K, &block, 256), want);
}

#[test]
fn q3_k_signed_six_bit_scales_and_a_high_bit_that_cancels_the_offset() {
    let low = |e: usize| ((e * 5) % 4) as u8;
    let high = |e: usize| ((e / 3) % 2) as u8;
    let mut hmask = [0u8; 32];
    for e in 0..256 {
        hmask[e % 32] |= high(e) << (e / 32);
    }
    // Scale g (6 bits, stored + 32): low nibble in byte g % 8 (shifted 4 for g ≥ 8), high
    // two bits in byte 8 + g % 4 at shift 2·(g / 4).
    let sc: Vec<i8> = (0..16).map(|g| g as i8 * 4 - 32).collect();
    let mut packed = [0u8; 12];
    for g in 0..16 {
        let u = (sc[g] + 32) as u8;
        packed[g % 8] |= (u & 15) << (4 * (g / 8));
        packed[8 + g % 4] |= (u >> 4) << (2 * (g / 4));
    }
    let mut block = hmask.to_vec();
    block.extend(pack_crumbs(low));
    block.extend(packed);
    block.extend(TWO);
    let want: Vec<f32> = (0..256)
        .map(|e| {
            let q = low(e) as i32 - if high(e) == 1 { 0 } else { 4 };
            2.0 * sc[e / 16] as f32 * q as f32
        })
        .collect();
    assert_eq!(values(GgmlType::Q3_K, &block, 256), want);
}

#[test]
fn q6_k_low_nibbles_and_high_crumbs_with_signed_scales() {
    let q = |e: usize| ((e * 11) % 64) as u8;
    // Value 128h + r: low nibble in byte 64h + r % 64 (shift 4 when r ≥ 64), high two bits
    // in byte 32h + r % 32 at shift 2·(r / 32).
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for e in 0..256 {
        let (h, r) = (e / 128, e % 128);
        ql[64 * h + r % 64] |= (q(e) & 15) << (4 * (r / 64));
        qh[32 * h + r % 32] |= (q(e) >> 4) << (2 * (r / 32));
    }
    let sc: Vec<i8> = (0..16).map(|g| (g as i8 - 8) * 15).collect();
    let mut block = ql.to_vec();
    block.extend(qh);
    block.extend(sc.iter().map(|&s| s as u8));
    block.extend(HALF);
    let want: Vec<f32> = (0..256)
        .map(|e| 0.5 * sc[e / 16] as f32 * (q(e) as f32 - 32.0))
        .collect();
    assert_eq!(values(GgmlType::Q6_K, &block, 256), want);
}

#[test]
fn sizes_and_unsupported_types_are_errors_not_panics() {
    let mut out = vec![0f32; 32];
    assert_eq!(
        dequantize(GgmlType::Q4_0, &[0u8; 17], &mut out),
        Err(DecodeError::Size {
            ty: GgmlType::Q4_0,
            bytes: 17,
            values: 32
        })
    );
    assert_eq!(
        dequantize(GgmlType::IQ2_XXS, &[0u8; 66], &mut vec![0f32; 256]),
        Err(DecodeError::Unsupported(GgmlType::IQ2_XXS))
    );
    assert!(DecodeError::Unsupported(GgmlType::IQ4_XS)
        .to_string()
        .starts_with("IQ4_XS tensors cannot be read"));
    let (mut q, mut s, mut b) = (vec![0u8; 32], vec![0f32; 2], vec![0f32; 2]);
    assert!(decode_affine(GgmlType::Q8_0, &[0u8; 34], &mut q, &mut s, &mut b).is_err());
    assert!(dequantize(GgmlType::F16, &[0u8; 6], &mut [0f32; 3]).is_ok());
    for ty in GgmlType::DECODABLE {
        assert!(ty.is_decodable());
        assert_eq!(ty.affine().is_some(), ty.is_quantized(), "{ty}");
    }
}
