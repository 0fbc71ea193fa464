//! A tiny GGUF writer for tests (enabled by the `test-util` feature). Not for production use:
//! it writes whatever it is given, including files a reader should reject.

use crate::{GgmlType, GgufArray, GgufValue};

/// A tensor to write: name, dimensions, raw ggml type, and its data (zeros when `None`).
type TestTensor = (String, Vec<u64>, u32, Option<Vec<u8>>);

/// Builds a GGUF file in memory. Tensor data is zero-filled.
#[derive(Debug, Clone)]
pub struct GgufBuilder {
    version: u32,
    kvs: Vec<(String, GgufValue)>,
    tensors: Vec<TestTensor>,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufBuilder {
    /// An empty version-3 file.
    pub fn new() -> Self {
        GgufBuilder {
            version: 3,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Sets the version number written in the header.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Adds a metadata key-value pair.
    pub fn kv(mut self, key: &str, value: GgufValue) -> Self {
        self.kvs.push((key.to_string(), value));
        self
    }

    /// Adds a string metadata value.
    pub fn kv_str(self, key: &str, value: &str) -> Self {
        self.kv(key, GgufValue::String(value.to_string()))
    }

    /// Adds a string-array metadata value.
    pub fn kv_strings<S: AsRef<str>>(self, key: &str, values: &[S]) -> Self {
        let v = values.iter().map(|s| s.as_ref().to_string()).collect();
        self.kv(key, GgufValue::Array(GgufArray::String(v)))
    }

    /// Adds a tensor of a known type.
    pub fn tensor(self, name: &str, dims: &[u64], ty: GgmlType) -> Self {
        self.raw_tensor(name, dims, ty.as_u32())
    }

    /// Adds a tensor with a raw ggml type number.
    pub fn raw_tensor(mut self, name: &str, dims: &[u64], ty: u32) -> Self {
        self.tensors
            .push((name.to_string(), dims.to_vec(), ty, None));
        self
    }

    /// Adds a tensor with its encoded data (`data` is written as given, so it should hold
    /// exactly the bytes the type and dimensions need).
    pub fn tensor_with_data(
        mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> Self {
        self.tensors
            .push((name.to_string(), dims.to_vec(), ty.as_u32(), Some(data)));
        self
    }

    /// The file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let alignment = self
            .kvs
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .filter(|a| *a > 0)
            .unwrap_or(crate::reader::DEFAULT_ALIGNMENT);
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            write_str(&mut out, k);
            out.extend_from_slice(&value_type(v).to_le_bytes());
            write_value(&mut out, v);
        }
        let mut offset = 0u64;
        let mut data_len = 0u64;
        let mut placed = Vec::new();
        for (name, dims, ty, data) in &self.tensors {
            write_str(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            let n = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .unwrap_or(0);
            let size = GgmlType::from_u32(*ty).bytes_for(n).unwrap_or(0);
            if let Some(data) = data {
                placed.push((offset, data));
            }
            data_len = offset + size;
            offset = data_len.next_multiple_of(alignment);
        }
        if !self.tensors.is_empty() {
            // Padding up to the data section, then the data; the file ends right after the last
            // tensor, so cutting even one byte makes it truncated.
            let data_start = (out.len() as u64).next_multiple_of(alignment);
            out.resize((data_start + data_len) as usize, 0);
            for (offset, data) in placed {
                let start = (data_start + offset) as usize;
                let end = (start + data.len()).min(out.len());
                out[start..end].copy_from_slice(&data[..end - start]);
            }
        }
        out
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn value_type(v: &GgufValue) -> u32 {
    match v {
        GgufValue::U8(_) => 0,
        GgufValue::I8(_) => 1,
        GgufValue::U16(_) => 2,
        GgufValue::I16(_) => 3,
        GgufValue::U32(_) => 4,
        GgufValue::I32(_) => 5,
        GgufValue::F32(_) => 6,
        GgufValue::Bool(_) => 7,
        GgufValue::String(_) => 8,
        GgufValue::Array(_) => 9,
        GgufValue::U64(_) => 10,
        GgufValue::I64(_) => 11,
        GgufValue::F64(_) => 12,
    }
}

fn array_type(a: &GgufArray) -> u32 {
    match a {
        GgufArray::U8(_) => 0,
        GgufArray::I8(_) => 1,
        GgufArray::U16(_) => 2,
        GgufArray::I16(_) => 3,
        GgufArray::U32(_) => 4,
        GgufArray::I32(_) => 5,
        GgufArray::F32(_) => 6,
        GgufArray::Bool(_) => 7,
        GgufArray::String(_) => 8,
        GgufArray::Array(_) => 9,
        GgufArray::U64(_) => 10,
        GgufArray::I64(_) => 11,
        GgufArray::F64(_) => 12,
    }
}

fn write_value(out: &mut Vec<u8>, v: &GgufValue) {
    match v {
        GgufValue::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => write_str(out, s),
        GgufValue::Array(a) => write_array(out, a),
    }
}

fn write_array(out: &mut Vec<u8>, a: &GgufArray) {
    out.extend_from_slice(&array_type(a).to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        GgufArray::U8(v) => out.extend_from_slice(v),
        GgufArray::I8(v) => each!(v),
        GgufArray::U16(v) => each!(v),
        GgufArray::I16(v) => each!(v),
        GgufArray::U32(v) => each!(v),
        GgufArray::I32(v) => each!(v),
        GgufArray::U64(v) => each!(v),
        GgufArray::I64(v) => each!(v),
        GgufArray::F32(v) => each!(v),
        GgufArray::F64(v) => each!(v),
        GgufArray::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        GgufArray::String(v) => v.iter().for_each(|s| write_str(out, s)),
        GgufArray::Array(v) => v.iter().for_each(|x| write_array(out, x)),
    }
}
