//! ggml tensor element types and their storage layout.

use std::fmt;

/// The element type of a tensor, as ggml numbers it.
///
/// Quantized types store elements in blocks: [`GgmlType::block_size`] elements take
/// [`GgmlType::bytes_per_block`] bytes. Numbers that ggml retired or that this crate does not
/// know are kept as [`GgmlType::Unknown`].
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit float.
    F64,
    /// 8-bit signed integer.
    I8,
    /// 16-bit signed integer.
    I16,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
    /// 4-bit, one f16 scale per 32 elements.
    Q4_0,
    /// 4-bit, f16 scale and minimum per 32 elements.
    Q4_1,
    /// 5-bit, one f16 scale per 32 elements.
    Q5_0,
    /// 5-bit, f16 scale and minimum per 32 elements.
    Q5_1,
    /// 8-bit, one f16 scale per 32 elements.
    Q8_0,
    /// 8-bit with scale and sum (an intermediate format).
    Q8_1,
    /// 2-bit K-quant.
    Q2_K,
    /// 3-bit K-quant.
    Q3_K,
    /// 4-bit K-quant.
    Q4_K,
    /// 5-bit K-quant.
    Q5_K,
    /// 6-bit K-quant.
    Q6_K,
    /// 8-bit K-quant (an intermediate format).
    Q8_K,
    /// IQ2_XXS importance quant.
    IQ2_XXS,
    /// IQ2_XS importance quant.
    IQ2_XS,
    /// IQ2_S importance quant.
    IQ2_S,
    /// IQ3_XXS importance quant.
    IQ3_XXS,
    /// IQ3_S importance quant.
    IQ3_S,
    /// IQ1_S importance quant.
    IQ1_S,
    /// IQ1_M importance quant.
    IQ1_M,
    /// IQ4_NL non-linear 4-bit quant.
    IQ4_NL,
    /// IQ4_XS non-linear 4-bit quant.
    IQ4_XS,
    /// Ternary quant, 1.69 bits per weight.
    TQ1_0,
    /// Ternary quant, 2 bits per weight.
    TQ2_0,
    /// Microscaling FP4.
    MXFP4,
    /// NVIDIA FP4.
    NVFP4,
    /// 1-bit quant.
    Q1_0,
    /// A type number this crate does not know (or one that ggml retired).
    Unknown(u32),
}

/// (type, ggml number, name, elements per block, bytes per block) for every known type.
/// Sizes follow ggml's `type_traits` (`ggml-common.h`).
const TABLE: &[(GgmlType, u32, &str, u64, u64)] = &[
    (GgmlType::F32, 0, "F32", 1, 4),
    (GgmlType::F16, 1, "F16", 1, 2),
    (GgmlType::Q4_0, 2, "Q4_0", 32, 18),
    (GgmlType::Q4_1, 3, "Q4_1", 32, 20),
    (GgmlType::Q5_0, 6, "Q5_0", 32, 22),
    (GgmlType::Q5_1, 7, "Q5_1", 32, 24),
    (GgmlType::Q8_0, 8, "Q8_0", 32, 34),
    (GgmlType::Q8_1, 9, "Q8_1", 32, 36),
    (GgmlType::Q2_K, 10, "Q2_K", 256, 84),
    (GgmlType::Q3_K, 11, "Q3_K", 256, 110),
    (GgmlType::Q4_K, 12, "Q4_K", 256, 144),
    (GgmlType::Q5_K, 13, "Q5_K", 256, 176),
    (GgmlType::Q6_K, 14, "Q6_K", 256, 210),
    (GgmlType::Q8_K, 15, "Q8_K", 256, 292),
    (GgmlType::IQ2_XXS, 16, "IQ2_XXS", 256, 66),
    (GgmlType::IQ2_XS, 17, "IQ2_XS", 256, 74),
    (GgmlType::IQ3_XXS, 18, "IQ3_XXS", 256, 98),
    (GgmlType::IQ1_S, 19, "IQ1_S", 256, 50),
    (GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 18),
    (GgmlType::IQ3_S, 21, "IQ3_S", 256, 110),
    (GgmlType::IQ2_S, 22, "IQ2_S", 256, 82),
    (GgmlType::IQ4_XS, 23, "IQ4_XS", 256, 136),
    (GgmlType::I8, 24, "I8", 1, 1),
    (GgmlType::I16, 25, "I16", 1, 2),
    (GgmlType::I32, 26, "I32", 1, 4),
    (GgmlType::I64, 27, "I64", 1, 8),
    (GgmlType::F64, 28, "F64", 1, 8),
    (GgmlType::IQ1_M, 29, "IQ1_M", 256, 56),
    (GgmlType::BF16, 30, "BF16", 1, 2),
    (GgmlType::TQ1_0, 34, "TQ1_0", 256, 54),
    (GgmlType::TQ2_0, 35, "TQ2_0", 256, 66),
    (GgmlType::MXFP4, 39, "MXFP4", 32, 17),
    (GgmlType::NVFP4, 40, "NVFP4", 64, 36),
    (GgmlType::Q1_0, 41, "Q1_0", 128, 18),
];

impl GgmlType {
    /// The type with ggml number `n`; [`GgmlType::Unknown`] if this crate does not know it.
    pub fn from_u32(n: u32) -> GgmlType {
        TABLE
            .iter()
            .find(|row| row.1 == n)
            .map_or(GgmlType::Unknown(n), |row| row.0)
    }

    /// The ggml number of this type.
    pub fn as_u32(self) -> u32 {
        match self {
            GgmlType::Unknown(n) => n,
            known => TABLE
                .iter()
                .find(|row| row.0 == known)
                .map_or(u32::MAX, |row| row.1),
        }
    }

    fn row(self) -> Option<&'static (GgmlType, u32, &'static str, u64, u64)> {
        match self {
            GgmlType::Unknown(_) => None,
            known => TABLE.iter().find(|row| row.0 == known),
        }
    }

    /// ggml's name for the type, e.g. `"Q4_1"`; `"unknown"` for [`GgmlType::Unknown`].
    pub fn name(self) -> &'static str {
        self.row().map_or("unknown", |row| row.2)
    }

    /// Elements per block (1 for plain types); `None` for an unknown type.
    pub fn block_size(self) -> Option<u64> {
        self.row().map(|row| row.3)
    }

    /// Bytes per block; `None` for an unknown type.
    pub fn bytes_per_block(self) -> Option<u64> {
        self.row().map(|row| row.4)
    }

    /// Whether the type is block-quantized (block size above 1).
    pub fn is_quantized(self) -> bool {
        self.block_size().is_some_and(|b| b > 1)
    }

    /// Bytes taken by `n_elements` elements; `None` if the type is unknown, `n_elements` is not
    /// a whole number of blocks, or the size overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let (block, bytes) = (self.block_size()?, self.bytes_per_block()?);
        if n_elements % block != 0 {
            return None;
        }
        (n_elements / block).checked_mul(bytes)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GgmlType::Unknown(n) => write!(f, "unknown ggml type {n}"),
            known => f.write_str(known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_unique() {
        for row in TABLE {
            assert_eq!(GgmlType::from_u32(row.1), row.0);
            assert_eq!(row.0.as_u32(), row.1);
            assert_eq!(TABLE.iter().filter(|r| r.1 == row.1).count(), 1);
        }
        assert_eq!(GgmlType::from_u32(4), GgmlType::Unknown(4));
        assert_eq!(GgmlType::Unknown(99).as_u32(), 99);
        assert_eq!(GgmlType::Unknown(99).block_size(), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(GgmlType::F32.bytes_for(10), Some(40));
        assert_eq!(GgmlType::Q4_1.bytes_for(64), Some(40));
        assert_eq!(
            GgmlType::Q8_0.bytes_for(576 * 49152),
            Some(576 / 32 * 34 * 49152)
        );
        assert_eq!(GgmlType::Q4_K.bytes_for(100), None);
        assert_eq!(GgmlType::Q6_K.bytes_for(256), Some(210));
        assert!(GgmlType::Q4_0.is_quantized());
        assert!(!GgmlType::BF16.is_quantized());
        assert_eq!(GgmlType::Q5_K.to_string(), "Q5_K");
        assert_eq!(GgmlType::Unknown(5).to_string(), "unknown ggml type 5");
    }
}
