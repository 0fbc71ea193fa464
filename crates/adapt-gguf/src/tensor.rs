//! [`TensorInfo`]: one entry of a GGUF file's tensor table, with the element count and byte
//! size its shape and type give.

use crate::GgmlType;

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the fastest-moving (row length).
    pub dims: Vec<u64>,
    /// The element type.
    pub ggml_type: GgmlType,
    /// Offset of the tensor's data from [`GgufFile::data_offset`](crate::GgufFile::data_offset).
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (1 for a scalar); `u64::MAX` if it would overflow (never after `open`).
    pub fn n_elements(&self) -> u64 {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// Bytes of tensor data; `None` for an unknown ggml type (or a shape that does not fit the
    /// type's blocks, which `open` rejects).
    pub fn byte_size(&self) -> Option<u64> {
        let block = self.ggml_type.block_size()?;
        if self.dims.first().copied().unwrap_or(1) % block != 0 {
            return None;
        }
        self.ggml_type.bytes_for(self.n_elements())
    }
}
