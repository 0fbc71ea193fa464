//! The tensors of a GGUF file, under their GGUF names: every tensor type checked first, then
//! the data read by MLX (quantized tensors as MLX triplets, groups of 32).

use std::collections::HashMap;

use adapt_gguf::{GgmlType, GgufFile};
use mlx_rs::Array;

use crate::error::{EngineError, Result};

/// Every tensor of `gguf`, by its GGUF name.
pub fn read_tensors(gguf: &GgufFile) -> Result<HashMap<String, Array>> {
    let path = gguf.path();
    if let Some(t) = gguf
        .tensors()
        .iter()
        .find(|t| !GgmlType::MLX_READABLE.contains(&t.ggml_type))
    {
        return Err(EngineError::invalid_model(
            path,
            format!(
                "tensor '{}' is stored as {}, which Adapt cannot read; use a GGUF file with \
                 F32, F16, BF16, Q8_0, Q4_0 or Q4_1 tensors",
                t.name, t.ggml_type
            ),
        ));
    }
    mlx_rs::io::GgufFile::load(path)
        .and_then(|f| f.arrays())
        .map_err(|e| EngineError::invalid_model(path, format!("MLX could not read it: {e}")))
}
