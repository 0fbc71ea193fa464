//! One tensor's data, read a run of whole rows at a time — so a model is decoded tensor by
//! tensor, chunk by chunk, and never held whole in `f32`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use crate::quants::{self, DecodeError};
use crate::{GgufError, GgufFile, TensorInfo};

/// A row-range reader of one tensor's data (see [`GgufFile::tensor_data`]).
#[derive(Debug)]
pub struct TensorData<'a> {
    gguf: &'a GgufFile,
    info: &'a TensorInfo,
    file: File,
    start: u64,
    row_bytes: usize,
    raw: Vec<u8>,
}

/// Rows in the affine form of [`quants::decode_affine`]: an integer per value, a scale and a
/// bias per group.
#[derive(Debug, Clone, Default)]
pub struct AffineRows {
    /// One unsigned integer per value.
    pub q: Vec<u8>,
    /// One scale per group.
    pub scales: Vec<f32>,
    /// One bias per group.
    pub biases: Vec<f32>,
}

impl GgufFile {
    /// Opens the data of tensor `info` (an entry of [`GgufFile::tensors`]) for reading. Fails,
    /// naming the tensor, when its type cannot be decoded or its rows are not whole blocks.
    pub fn tensor_data<'a>(&'a self, info: &'a TensorInfo) -> Result<TensorData<'a>, GgufError> {
        let fail = |source| GgufError::Tensor {
            path: self.path().to_path_buf(),
            tensor: info.name.clone(),
            source,
        };
        if !info.ggml_type.is_decodable() {
            return Err(fail(DecodeError::Unsupported(info.ggml_type)));
        }
        let row_len = info.dims.first().copied().unwrap_or(1);
        let row_bytes = info
            .ggml_type
            .bytes_for(row_len)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| {
                fail(DecodeError::Size {
                    ty: info.ggml_type,
                    bytes: 0,
                    values: row_len as usize,
                })
            })?;
        let file = File::open(self.path()).map_err(|source| self.io(source))?;
        Ok(TensorData {
            gguf: self,
            info,
            file,
            start: self.data_offset() + info.offset,
            row_bytes,
            raw: Vec::new(),
        })
    }

    fn io(&self, source: std::io::Error) -> GgufError {
        GgufError::Io {
            path: self.path().to_path_buf(),
            source,
        }
    }
}

impl TensorData<'_> {
    /// The tensor.
    pub fn info(&self) -> &TensorInfo {
        self.info
    }

    /// Values per row (`dims[0]`).
    pub fn row_len(&self) -> usize {
        self.info.dims.first().copied().unwrap_or(1) as usize
    }

    /// Rows: every dimension but the first, multiplied.
    pub fn rows(&self) -> usize {
        self.info.dims.iter().skip(1).product::<u64>() as usize
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// The stored bytes of `rows`, in `buf` (replacing what it held).
    pub fn read_raw(&mut self, rows: Range<usize>, buf: &mut Vec<u8>) -> Result<(), GgufError> {
        let rows = rows.start.min(self.rows())..rows.end.min(self.rows());
        buf.resize(rows.len() * self.row_bytes, 0);
        let at = self.start + (rows.start * self.row_bytes) as u64;
        let gguf = self.gguf;
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.read_exact(buf))
            .map_err(|e| gguf.io(e))
    }

    /// The values of `rows`, decoded to `f32`, in `out` (replacing what it held).
    pub fn read_f32(&mut self, rows: Range<usize>, out: &mut Vec<f32>) -> Result<(), GgufError> {
        let mut raw = std::mem::take(&mut self.raw);
        self.read_raw(rows, &mut raw)?;
        out.resize(raw.len() / self.row_bytes * self.row_len(), 0.0);
        let done = quants::dequantize(self.info.ggml_type, &raw, out);
        self.raw = raw;
        done.map_err(|e| self.fail(e))
    }

    /// The affine form of `rows` (a quantized type only), in `out`.
    pub fn read_affine(
        &mut self,
        rows: Range<usize>,
        out: &mut AffineRows,
    ) -> Result<(), GgufError> {
        let ty = self.info.ggml_type;
        let group = ty
            .affine()
            .ok_or_else(|| self.fail(DecodeError::Unsupported(ty)))?
            .group;
        let mut raw = std::mem::take(&mut self.raw);
        self.read_raw(rows, &mut raw)?;
        let n = raw.len() / self.row_bytes * self.row_len();
        out.q.resize(n, 0);
        out.scales.resize(n / group, 0.0);
        out.biases.resize(n / group, 0.0);
        let done = quants::decode_affine(ty, &raw, &mut out.q, &mut out.scales, &mut out.biases);
        self.raw = raw;
        done.map_err(|e| self.fail(e))
    }

    fn fail(&self, source: DecodeError) -> GgufError {
        GgufError::Tensor {
            path: self.gguf.path().to_path_buf(),
            tensor: self.info.name.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::GgufBuilder;
    use crate::{AffineRows, GgmlType, GgufFile};

    #[test]
    fn rows_are_read_and_decoded_where_the_table_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        // Two Q8_0 rows of 64 values: row r, block b has scale 2^-(r+b) and values -16..16.
        let mut q8 = Vec::new();
        for r in 0..2u16 {
            for b in 0..2u16 {
                q8.extend((0x3c00u16 - 0x400 * (r + b)).to_le_bytes());
                q8.extend((0..32).map(|i| (i as i8 - 16) as u8));
            }
        }
        let f32s: Vec<u8> = [1.5f32, -2.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let bytes = GgufBuilder::new()
            .tensor_with_data("norm", &[3], GgmlType::F32, f32s)
            .tensor_with_data("w", &[64, 2], GgmlType::Q8_0, q8)
            .raw_tensor("iq", &[256], GgmlType::IQ2_XS.as_u32())
            .build();
        std::fs::write(&path, bytes).unwrap();
        let gguf = GgufFile::open(&path).unwrap();

        let mut data = gguf.tensor_data(gguf.tensor("w").unwrap()).unwrap();
        assert_eq!((data.rows(), data.row_len(), data.row_bytes()), (2, 64, 68));
        let mut out = Vec::new();
        data.read_f32(1..2, &mut out).unwrap();
        let want: Vec<f32> = (0..64)
            .map(|i| (i % 32) as f32 - 16.0)
            .enumerate()
            .map(|(i, v)| v * 0.5f32.powi(1 + i as i32 / 32))
            .collect();
        assert_eq!(out, want);
        let mut affine = AffineRows::default();
        data.read_affine(0..2, &mut affine).unwrap();
        assert_eq!((affine.q.len(), affine.scales.len()), (128, 4));
        assert_eq!(affine.scales, [1.0, 0.5, 0.5, 0.25]);
        assert_eq!(affine.biases[0], -128.0);

        let mut norm = gguf.tensor_data(gguf.tensor("norm").unwrap()).unwrap();
        norm.read_f32(0..1, &mut out).unwrap();
        assert_eq!(out, [1.5, -2.0, 3.0]);
        assert!(norm.read_affine(0..1, &mut affine).is_err());

        let err = gguf.tensor_data(gguf.tensor("iq").unwrap()).unwrap_err();
        assert_eq!(err.code(), "gguf.unsupported_type");
        let msg = err.to_string();
        assert!(
            msg.contains("t.gguf") && msg.contains("'iq'") && msg.contains("IQ2_XS"),
            "{msg}"
        );
    }
}
