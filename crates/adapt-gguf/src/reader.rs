//! The parser: header, metadata and tensor table, read once through a buffered reader.
//!
//! Every length and count is checked against the bytes left in the file *before* anything is
//! allocated, so a corrupt or hostile file yields an error, never a panic or a huge allocation.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::tensor::TensorInfo;
use crate::value::{GgufArray, GgufValue};
use crate::{GgmlType, GgufError};

/// The alignment of the data section when `general.alignment` is absent.
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;
/// How deep arrays of arrays may nest.
const MAX_ARRAY_DEPTH: u32 = 8;
/// No single metadata string or array body is anywhere near this large in a real file (the
/// biggest, tokenizer vocabularies, take a few MiB); a larger claim means corruption.
const MAX_VALUE_BYTES: u64 = 256 << 20;

/// What a successful parse yields.
pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub index: HashMap<String, usize>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
}

/// Parses a whole GGUF header from `reader`, which yields the file from its first byte; `len`
/// is the file length and `path` is only used in messages.
pub(crate) fn parse<R: Read>(reader: R, len: u64, path: &Path) -> Result<Parsed, GgufError> {
    let mut p = Parser {
        r: reader,
        pos: 0,
        len,
        path,
        ctx: String::new(),
    };
    p.parse()
}

struct Parser<'a, R> {
    r: R,
    pos: u64,
    len: u64,
    path: &'a Path,
    /// What is being read, for truncation messages.
    ctx: String,
}

impl<R: Read> Parser<'_, R> {
    fn path(&self) -> PathBuf {
        self.path.to_path_buf()
    }

    fn truncated(&self, needed: u64) -> GgufError {
        GgufError::Truncated {
            path: self.path(),
            what: self.ctx.clone(),
            needed,
            len: self.len,
        }
    }

    fn malformed(&self, offset: u64, reason: String) -> GgufError {
        GgufError::Malformed {
            path: self.path(),
            offset,
            reason,
        }
    }

    /// Fails unless `n` more bytes are in the file.
    fn ensure(&self, n: u64) -> Result<(), GgufError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            end => Err(self.truncated(end.unwrap_or(u64::MAX))),
        }
    }

    /// Fails unless `count` items of at least `min_size` bytes each fit in the rest of the file.
    fn ensure_items(&self, count: u64, min_size: u64) -> Result<(), GgufError> {
        self.ensure(count.saturating_mul(min_size))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), GgufError> {
        self.ensure(buf.len() as u64)?;
        self.r.read_exact(buf).map_err(|source| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                // The file shrank while we read it.
                self.truncated(self.pos + buf.len() as u64)
            } else {
                GgufError::Io {
                    path: self.path(),
                    source,
                }
            }
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        self.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, GgufError> {
        self.ensure(n)?;
        if n > MAX_VALUE_BYTES {
            let reason = format!(
                "{} claims {n} bytes, more than any metadata value takes",
                self.ctx
            );
            return Err(self.malformed(self.pos, reason));
        }
        let n = usize::try_from(n).map_err(|_| self.truncated(u64::MAX))?;
        let mut buf = vec![0u8; n];
        self.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// A string value; invalid UTF-8 is replaced rather than rejected.
    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.u64()?;
        let bytes = self.bytes(n)?;
        Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// A key or tensor name, which must be valid UTF-8.
    fn name(&mut self, what: &str) -> Result<String, GgufError> {
        let start = self.pos;
        let n = self.u64()?;
        let bytes = self.bytes(n)?;
        String::from_utf8(bytes)
            .map_err(|_| self.malformed(start, format!("the {what} is not valid UTF-8")))
    }

    fn parse(&mut self) -> Result<Parsed, GgufError> {
        let mut magic = Vec::with_capacity(4);
        (&mut self.r)
            .take(4)
            .read_to_end(&mut magic)
            .map_err(|source| GgufError::Io {
                path: self.path(),
                source,
            })?;
        self.pos = magic.len() as u64;
        if magic.len() < 4 && b"GGUF".starts_with(&magic) {
            self.ctx = "the magic number".to_string();
            return Err(self.truncated(4));
        }
        if magic != b"GGUF" {
            return Err(GgufError::BadMagic {
                path: self.path(),
                found: magic,
            });
        }

        self.ctx = "the header".to_string();
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion {
                path: self.path(),
                version,
            });
        }
        let tensor_count = self.u64()?;
        let kv_count = self.u64()?;

        // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes.
        self.ctx = format!("the metadata table ({kv_count} entries)");
        self.ensure_items(kv_count, 13)?;
        let mut metadata = Vec::with_capacity(clamp_capacity(kv_count));
        let mut index = HashMap::with_capacity(clamp_capacity(kv_count));
        for i in 0..kv_count {
            self.ctx = format!("metadata entry #{i}");
            let key_pos = self.pos;
            let key = self.name("metadata key")?;
            if index.contains_key(&key) {
                return Err(self.malformed(key_pos, format!("metadata key '{key}' appears twice")));
            }
            self.ctx = format!("the value of metadata key '{key}'");
            let ty_pos = self.pos;
            let ty = self.u32()?;
            let value = self.value(ty, ty_pos, &key)?;
            index.insert(key.clone(), metadata.len());
            metadata.push((key, value));
        }

        let alignment_value = index
            .get("general.alignment")
            .and_then(|&i| metadata.get(i))
            .map(|kv: &(String, GgufValue)| &kv.1);
        let alignment = match alignment_value {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 30 => a,
                _ => {
                    return Err(self.malformed(
                        self.pos,
                        format!("general.alignment must be a power of two, not {v:?}"),
                    ))
                }
            },
        };

        // A tensor info takes at least 8 (name length) + 4 (dims) + 4 (type) + 8 (offset) bytes.
        self.ctx = format!("the tensor table ({tensor_count} tensors)");
        self.ensure_items(tensor_count, 24)?;
        let mut tensors = Vec::with_capacity(clamp_capacity(tensor_count));
        let mut names = std::collections::HashSet::with_capacity(clamp_capacity(tensor_count));
        for i in 0..tensor_count {
            self.ctx = format!("tensor info #{i}");
            let info_pos = self.pos;
            let tensor = self.tensor_info(alignment)?;
            if !names.insert(tensor.name.clone()) {
                let reason = format!("tensor '{}' appears twice", tensor.name);
                return Err(self.malformed(info_pos, reason));
            }
            tensors.push(tensor);
        }

        let data_offset = self
            .pos
            .checked_next_multiple_of(alignment)
            .unwrap_or(u64::MAX);
        for t in &tensors {
            // Sizes were validated by `tensor_info`; unknown types can only be checked for start.
            let size = t.byte_size().unwrap_or(0);
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|start| start.checked_add(size))
                .unwrap_or(u64::MAX);
            if end > self.len {
                return Err(GgufError::Truncated {
                    path: self.path(),
                    what: format!("tensor '{}'", t.name),
                    needed: end,
                    len: self.len,
                });
            }
        }

        Ok(Parsed {
            version,
            metadata,
            index,
            tensors,
            alignment,
            data_offset,
        })
    }

    fn tensor_info(&mut self, alignment: u64) -> Result<TensorInfo, GgufError> {
        let start = self.pos;
        let name = self.name("tensor name")?;
        self.ctx = format!("tensor info for '{name}'");
        let n_dims = self.u32()?;
        if n_dims > MAX_DIMS {
            let reason = format!("tensor '{name}' has {n_dims} dimensions (at most {MAX_DIMS})");
            return Err(self.malformed(start, reason));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64()?);
        }
        let ggml_type = GgmlType::from_u32(self.u32()?);
        let offset = self.u64()?;
        let tensor = TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        };
        if offset % alignment != 0 {
            let reason = format!(
                "tensor '{}' starts at data offset {offset}, which is not a multiple of the alignment {alignment}",
                tensor.name
            );
            return Err(self.malformed(start, reason));
        }
        let Some(n) = tensor
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        else {
            let reason = format!(
                "tensor '{}' has too many elements {:?}",
                tensor.name, tensor.dims
            );
            return Err(self.malformed(start, reason));
        };
        if let (Some(block), Some(_)) = (ggml_type.block_size(), ggml_type.bytes_per_block()) {
            let row = tensor.dims.first().copied().unwrap_or(1);
            if row % block != 0 || ggml_type.bytes_for(n).is_none() {
                let reason = format!(
                    "tensor '{}' of type {ggml_type} has shape {:?}, whose rows are not a whole number of {block}-element blocks",
                    tensor.name, tensor.dims
                );
                return Err(self.malformed(start, reason));
            }
        }
        Ok(tensor)
    }

    fn value(&mut self, ty: u32, ty_pos: u64, key: &str) -> Result<GgufValue, GgufError> {
        Ok(match ty {
            0 => GgufValue::U8(u8::from_le_bytes(self.array()?)),
            1 => GgufValue::I8(i8::from_le_bytes(self.array()?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array()?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array()?)),
            4 => GgufValue::U32(u32::from_le_bytes(self.array()?)),
            5 => GgufValue::I32(i32::from_le_bytes(self.array()?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array()?)),
            7 => GgufValue::Bool(self.array::<1>()?[0] != 0),
            8 => GgufValue::String(self.string()?),
            9 => GgufValue::Array(self.array_value(key, 0)?),
            10 => GgufValue::U64(u64::from_le_bytes(self.array()?)),
            11 => GgufValue::I64(i64::from_le_bytes(self.array()?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array()?)),
            other => {
                let reason = format!("metadata key '{key}' has unknown value type {other}");
                return Err(self.malformed(ty_pos, reason));
            }
        })
    }

    /// Reads `count` fixed-size elements in one go and converts them.
    fn fixed<const N: usize, T>(
        &mut self,
        count: u64,
        conv: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, GgufError> {
        let raw = self.bytes(count.saturating_mul(N as u64))?;
        Ok(raw
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                conv(a)
            })
            .collect())
    }

    fn array_value(&mut self, key: &str, depth: u32) -> Result<GgufArray, GgufError> {
        let start = self.pos;
        if depth >= MAX_ARRAY_DEPTH {
            let reason =
                format!("metadata key '{key}' nests arrays deeper than {MAX_ARRAY_DEPTH} levels");
            return Err(self.malformed(start, reason));
        }
        let ty = self.u32()?;
        let count = self.u64()?;
        Ok(match ty {
            0 => GgufArray::U8(self.bytes(count)?),
            1 => GgufArray::I8(self.fixed(count, i8::from_le_bytes)?),
            2 => GgufArray::U16(self.fixed(count, u16::from_le_bytes)?),
            3 => GgufArray::I16(self.fixed(count, i16::from_le_bytes)?),
            4 => GgufArray::U32(self.fixed(count, u32::from_le_bytes)?),
            5 => GgufArray::I32(self.fixed(count, i32::from_le_bytes)?),
            6 => GgufArray::F32(self.fixed(count, f32::from_le_bytes)?),
            7 => GgufArray::Bool(self.fixed(count, |b: [u8; 1]| b[0] != 0)?),
            10 => GgufArray::U64(self.fixed(count, u64::from_le_bytes)?),
            11 => GgufArray::I64(self.fixed(count, i64::from_le_bytes)?),
            12 => GgufArray::F64(self.fixed(count, f64::from_le_bytes)?),
            8 => {
                self.ensure_items(count, 8)?;
                let mut v = Vec::with_capacity(clamp_capacity(count));
                for _ in 0..count {
                    v.push(self.string()?);
                }
                GgufArray::String(v)
            }
            9 => {
                self.ensure_items(count, 12)?;
                let mut v = Vec::with_capacity(clamp_capacity(count));
                for _ in 0..count {
                    v.push(self.array_value(key, depth + 1)?);
                }
                GgufArray::Array(v)
            }
            other => {
                let reason = format!("metadata key '{key}' is an array of unknown type {other}");
                return Err(self.malformed(start, reason));
            }
        })
    }
}

/// Pre-allocation is capped: counts have been checked against the file length, but a cap keeps
/// a hostile file from making us reserve much more than it can fill.
fn clamp_capacity(count: u64) -> usize {
    usize::try_from(count.min(1 << 20)).unwrap_or(1 << 20)
}
