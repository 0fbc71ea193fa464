//! The tokenized cache: one flat, memory-mapped file per split.
//!
//! Layout (little-endian), sections aligned to 8 bytes:
//!
//! ```text
//! 0   b"ADAPTTOK"        magic
//! 8   u32 version (1)    u32 reserved
//! 16  u64 examples (n)   u64 tokens (t)
//! 32  u64 tokens_at      u64 mask_at      u64 offsets_at     u64 lines_at
//! 64  tokens  u32[t]     the examples' tokens, back to back
//!     mask    u8[⌈t/8⌉]  bit j%8 of byte j/8 set when token j is trained
//!     offsets u64[n+1]   example i is tokens[offsets[i]..offsets[i+1]]
//!     lines   u64[n]     source line of each example
//! ```
//!
//! The writer streams tokens to disk and keeps only the mask bits, offsets and lines in
//! memory; it writes to a temporary name and renames when complete, so a crash never leaves a
//! half-written cache under the real name.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::DataError;
use crate::render::{hex, Tokenized};

const MAGIC: &[u8; 8] = b"ADAPTTOK";
const VERSION: u32 = 1;
const HEADER: u64 = 64;

fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The sha256 of a file's content, read in blocks.
pub fn hash_file(path: &Path) -> Result<String, DataError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// The cache key: sha256 over the parts (content hashes, tokenizer identity, options…).
pub fn cache_key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"adapt-data cache v1");
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

/// Writes one split's cache file.
pub struct CacheWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    tokens: u64,
    mask: Vec<u8>,
    offsets: Vec<u64>,
    lines: Vec<u64>,
}

impl CacheWriter {
    /// Starts writing `path` (through a temporary file beside it).
    pub fn create(path: &Path) -> Result<CacheWriter, DataError> {
        let tmp = path.with_extension("partial");
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&[0u8; HEADER as usize]).map_err(io(&tmp))?;
        Ok(CacheWriter {
            out,
            tmp,
            path: path.to_path_buf(),
            tokens: 0,
            mask: Vec::new(),
            offsets: vec![0],
            lines: Vec::new(),
        })
    }

    /// Appends one example.
    pub fn push(&mut self, line: u64, t: &Tokenized) -> Result<(), DataError> {
        let mut bytes = Vec::with_capacity(t.tokens.len() * 4);
        for &id in &t.tokens {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        self.out.write_all(&bytes).map_err(io(&self.tmp))?;
        for &m in &t.mask {
            let j = self.tokens;
            if j % 8 == 0 {
                self.mask.push(0);
            }
            if m {
                *self.mask.last_mut().unwrap_or(&mut 0) |= 1 << (j % 8);
            }
            self.tokens += 1;
        }
        self.offsets.push(self.tokens);
        self.lines.push(line);
        Ok(())
    }

    /// Examples written so far.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Writes the index and header and moves the file into place.
    pub fn finish(mut self) -> Result<(), DataError> {
        let e = io(&self.tmp);
        let pad = |len: u64| (8 - len % 8) % 8;
        let tokens_at = HEADER;
        let mask_at = tokens_at + self.tokens * 4;
        let mut at = mask_at + self.mask.len() as u64;
        self.out.write_all(&self.mask).map_err(&e)?;
        self.out
            .write_all(&vec![0u8; pad(at) as usize])
            .map_err(&e)?;
        at += pad(at);
        let offsets_at = at;
        let lines_at = offsets_at + self.offsets.len() as u64 * 8;
        for v in self.offsets.iter().chain(&self.lines) {
            self.out.write_all(&v.to_le_bytes()).map_err(&e)?;
        }
        let mut header = Vec::with_capacity(HEADER as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        for v in [
            self.lines.len() as u64,
            self.tokens,
            tokens_at,
            mask_at,
            offsets_at,
            lines_at,
        ] {
            header.extend_from_slice(&v.to_le_bytes());
        }
        self.out.seek(SeekFrom::Start(0)).map_err(&e)?;
        self.out.write_all(&header).map_err(&e)?;
        let file = self.out.into_inner().map_err(|err| e(err.into_error()))?;
        file.sync_all().map_err(&e)?;
        std::fs::rename(&self.tmp, &self.path).map_err(io(&self.path))
    }
}

/// A split's cache file, memory-mapped.
pub struct TokenCache {
    map: memmap2::Mmap,
    examples: usize,
    tokens_at: usize,
    mask_at: usize,
    offsets_at: usize,
    lines_at: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenCache({} examples)", self.examples)
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

impl TokenCache {
    /// Maps and checks `path`.
    pub fn open(path: &Path) -> Result<TokenCache, DataError> {
        let file = File::open(path).map_err(io(path))?;
        // SAFETY: cache files are written once, completely, then renamed into place and never
        // modified; a concurrent truncation by another program could still fault, as with any
        // memory map.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io(path))?;
        let bad = |message: &str| DataError::CacheCorrupt {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        if map.len() < HEADER as usize || &map[..8] != MAGIC {
            return Err(bad("not an Adapt token cache"));
        }
        if u32::from_le_bytes([map[8], map[9], map[10], map[11]]) != VERSION {
            return Err(bad("unsupported cache version"));
        }
        let [n, t, tokens_at, mask_at, offsets_at, lines_at] =
            [16, 24, 32, 40, 48, 56].map(|i| u64_at(&map, i));
        let expected_end = n
            .checked_mul(8)
            .and_then(|x| x.checked_add(lines_at))
            .ok_or_else(|| bad("sizes overflow"))?;
        let consistent = tokens_at == HEADER
            && t.checked_mul(4).and_then(|x| x.checked_add(tokens_at)) == Some(mask_at)
            && mask_at.saturating_add(t.div_ceil(8)) <= offsets_at
            && offsets_at.checked_add(n.saturating_add(1).saturating_mul(8)) == Some(lines_at)
            && expected_end == map.len() as u64;
        if !consistent {
            return Err(bad("section sizes do not match the file size"));
        }
        let cache = TokenCache {
            examples: n as usize,
            tokens_at: tokens_at as usize,
            mask_at: mask_at as usize,
            offsets_at: offsets_at as usize,
            lines_at: lines_at as usize,
            map,
        };
        let mut prev = 0;
        for i in 0..=cache.examples {
            let o = cache.offset(i);
            if o < prev || o > t {
                return Err(bad("offsets are not increasing"));
            }
            prev = o;
        }
        if cache.offset(0) != 0 || prev != t {
            return Err(bad("offsets do not cover the tokens"));
        }
        Ok(cache)
    }

    fn offset(&self, i: usize) -> u64 {
        u64_at(&self.map, self.offsets_at + i * 8)
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples == 0
    }

    /// Token count of example `i`.
    pub fn length(&self, i: usize) -> usize {
        (self.offset(i + 1) - self.offset(i)) as usize
    }

    /// All tokens.
    pub fn total_tokens(&self) -> u64 {
        self.offset(self.examples)
    }

    /// Source line of example `i`.
    pub fn line(&self, i: usize) -> u64 {
        u64_at(&self.map, self.lines_at + i * 8)
    }

    /// Tokens and mask of example `i`.
    pub fn example(&self, i: usize) -> Tokenized {
        let (a, b) = (self.offset(i) as usize, self.offset(i + 1) as usize);
        let bytes = &self.map[self.tokens_at + a * 4..self.tokens_at + b * 4];
        let tokens = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mask = (a..b)
            .map(|j| self.map[self.mask_at + j / 8] & (1 << (j % 8)) != 0)
            .collect();
        Tokenized { tokens, mask }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tk(tokens: &[u32], mask: &[bool]) -> Tokenized {
        Tokenized {
            tokens: tokens.to_vec(),
            mask: mask.to_vec(),
        }
    }

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.tok");
        let examples = [
            tk(&[1, 2, 3], &[false, true, true]),
            tk(&[], &[]),
            tk(&[9; 13], &[true; 13]),
        ];
        let mut w = CacheWriter::create(&path).unwrap();
        for (i, e) in examples.iter().enumerate() {
            w.push(i as u64 + 10, e).unwrap();
        }
        w.finish().unwrap();
        let c = TokenCache::open(&path).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.total_tokens(), 16);
        for (i, e) in examples.iter().enumerate() {
            assert_eq!(&c.example(i), e);
            assert_eq!(c.line(i), i as u64 + 10);
            assert_eq!(c.length(i), e.tokens.len());
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            TokenCache::open(&path).unwrap_err().code(),
            "data.cache_corrupt"
        );
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(
            TokenCache::open(&path).unwrap_err().code(),
            "data.cache_corrupt"
        );
    }
}
