//! How weights are stored, in words: the float dtype most tensors use and labels such as
//! "4-bit (group 32) mixed, f16".

use mlx_rs::Dtype;

use crate::models::layers::QuantSpec;

/// The float dtype of most of the float tensors (quantization scales included).
pub(crate) fn float_dtype<'a>(arrays: impl IntoIterator<Item = &'a mlx_rs::Array>) -> Dtype {
    let mut bytes: std::collections::HashMap<Dtype, usize> = Default::default();
    for a in arrays {
        if matches!(a.dtype(), Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16) {
            *bytes.entry(a.dtype()).or_default() += a.nbytes();
        }
    }
    bytes
        .into_iter()
        .max_by_key(|(_, b)| *b)
        .map_or(Dtype::Float16, |(d, _)| d)
}

/// A float dtype's short name ("f32", "f16", "bf16").
pub(crate) fn short_dtype(d: Dtype) -> &'static str {
    match d {
        Dtype::Float32 => "f32",
        Dtype::Float16 => "f16",
        Dtype::Bfloat16 => "bf16",
        _ => "other",
    }
}

/// How weights are stored, e.g. "4-bit (group 32) mixed, f16" (`mixed`: some modules differ
/// from `q`) or just the float dtype's name.
pub(crate) fn storage_label(q: Option<QuantSpec>, mixed: bool, dtype: &str) -> String {
    match q {
        Some(q) => format!(
            "{}-bit (group {}){}, {dtype}",
            q.bits,
            q.group_size,
            if mixed { " mixed" } else { "" }
        ),
        None => dtype.to_string(),
    }
}
