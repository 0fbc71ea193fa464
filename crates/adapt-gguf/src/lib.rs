//! A small, fast, panic-free reader of llama.cpp GGUF files (versions 2 and 3, little-endian).
//!
//! [`GgufFile::open`] reads the header, every metadata key-value pair (all value types,
//! including nested arrays) and the tensor table through one buffered pass, then checks that the
//! file is long enough to hold every tensor's data. Tensor data is read on demand, a tensor
//! and a run of rows at a time ([`GgufFile::tensor_data`]), and decoded to `f32` or to its
//! affine form by [`quants`] (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K–Q6_K).
//! [`GgufSupport::problems`] decides, from the header alone, whether a file can be loaded.
//!
//! ```no_run
//! let gguf = adapt_gguf::GgufFile::open("model.gguf")?;
//! assert_eq!(gguf.architecture(), Some("llama"));
//! let layers = gguf.get_u32("llama.block_count");
//! for t in gguf.tensors() {
//!     println!("{} {:?} {}", t.name, t.dims, t.ggml_type);
//! }
//! # Ok::<(), adapt_gguf::GgufError>(())
//! ```
//!
//! Layout of a GGUF file: the magic `GGUF`, a `u32` version, `u64` tensor and metadata counts,
//! the metadata (`u64`-length-prefixed key, `u32` value type, value), the tensor infos (name,
//! `u32` dimension count, `u64` dimensions, `u32` ggml type, `u64` offset into the data section),
//! then padding up to `general.alignment` (32 if absent) and the data section.

mod check;
mod data;
mod error;
pub mod quants;
mod reader;
mod tensor;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
mod types;
mod value;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

pub use check::{GgufSupport, Problem};
pub use data::{AffineRows, TensorData};
pub use error::GgufError;
pub use tensor::TensorInfo;
pub use types::GgmlType;
pub use value::{GgufArray, GgufValue};

/// An opened GGUF file: its metadata and tensor table, in file order.
#[derive(Debug, Clone)]
pub struct GgufFile {
    path: PathBuf,
    version: u32,
    file_len: u64,
    metadata: Vec<(String, GgufValue)>,
    index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl GgufFile {
    /// Opens and parses `path`, checking that every tensor's data lies within the file.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let reader = BufReader::with_capacity(1 << 20, file);
        let parsed = reader::parse(reader, file_len, path)?;
        Ok(Self::from_parsed(path, file_len, parsed))
    }

    fn from_parsed(path: &Path, file_len: u64, p: reader::Parsed) -> GgufFile {
        let tensor_index = p
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        GgufFile {
            path: path.to_path_buf(),
            version: p.version,
            file_len,
            metadata: p.metadata,
            index: p.index,
            tensors: p.tensors,
            tensor_index,
            alignment: p.alignment,
            data_offset: p.data_offset,
        }
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The file length in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Metadata keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.metadata.iter().map(|(k, _)| k.as_str())
    }

    /// Metadata key-value pairs in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &GgufValue)> + '_ {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.index
            .get(key)
            .and_then(|&i| self.metadata.get(i))
            .map(|(_, v)| v)
    }

    /// An integer value of any type that fits in `u32`.
    pub fn get_u32(&self, key: &str) -> Option<u32> {
        self.get(key)?.as_u64().and_then(|v| u32::try_from(v).ok())
    }

    /// An integer value of any type that fits in `u64`.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    /// An integer value of any type that fits in `i64`.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key)?.as_i64()
    }

    /// A `float32` value (a `float64` one is narrowed).
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.get(key)?.as_f64().map(|v| v as f32)
    }

    /// A `bool` value.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    /// A `string` value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// An array value of any element type.
    pub fn get_array(&self, key: &str) -> Option<&GgufArray> {
        self.get(key)?.as_array()
    }

    /// An array of strings.
    pub fn get_string_array(&self, key: &str) -> Option<&[String]> {
        match self.get_array(key)? {
            GgufArray::String(v) => Some(v),
            _ => None,
        }
    }

    /// An array of `int32`.
    pub fn get_i32_array(&self, key: &str) -> Option<&[i32]> {
        match self.get_array(key)? {
            GgufArray::I32(v) => Some(v),
            _ => None,
        }
    }

    /// An array of `uint32`.
    pub fn get_u32_array(&self, key: &str) -> Option<&[u32]> {
        match self.get_array(key)? {
            GgufArray::U32(v) => Some(v),
            _ => None,
        }
    }

    /// An array of `float32`.
    pub fn get_f32_array(&self, key: &str) -> Option<&[f32]> {
        match self.get_array(key)? {
            GgufArray::F32(v) => Some(v),
            _ => None,
        }
    }

    /// `general.architecture`, e.g. `"llama"`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// The tensor table in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    /// The data section's alignment (`general.alignment`, 32 if absent).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset of the data section; a tensor's data starts at
    /// `data_offset() + tensor.offset`.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
}

#[cfg(test)]
mod tests;
