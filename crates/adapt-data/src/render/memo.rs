//! [`EncodeMemo`]: the ids of short texts tokenized before. Tabular data renders the same
//! texts again and again — a category turned into a sentence, a yes / no answer — and
//! tokenizing is most of preparing a dataset, so each distinct short text is tokenized once
//! and its ids are copied after that. Encoding is a function of the text alone, so the ids
//! are the ones a fresh encoding gives; the memo is bounded (texts and entries), and once
//! full it only answers what it holds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use adapt_text::{TextError, Tokenizer};

/// Longest text the memo keeps, in bytes.
const MAX_TEXT_BYTES: usize = 256;

/// Most texts the memo keeps.
const MAX_ENTRIES: usize = 4096;

/// Token ids of short texts already encoded (without special tokens added).
#[derive(Debug, Default)]
pub(super) struct EncodeMemo {
    ids: RwLock<HashMap<Box<str>, Arc<[u32]>>>,
}

impl EncodeMemo {
    /// `tk.encode(text, false)`, from the memo when `text` was encoded before.
    pub(super) fn encode(&self, tk: &Tokenizer, text: &str) -> Result<Arc<[u32]>, TextError> {
        if text.len() > MAX_TEXT_BYTES {
            return Ok(tk.encode(text, false)?.into());
        }
        let read = self.ids.read().unwrap_or_else(|p| p.into_inner());
        if let Some(ids) = read.get(text) {
            return Ok(Arc::clone(ids));
        }
        let full = read.len() >= MAX_ENTRIES;
        drop(read);
        let ids: Arc<[u32]> = tk.encode(text, false)?.into();
        if !full {
            let mut write = self.ids.write().unwrap_or_else(|p| p.into_inner());
            write.insert(text.into(), Arc::clone(&ids));
        }
        Ok(ids)
    }

    /// Texts held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        let gguf = adapt_gguf::GgufFile::open(adapt_testsupport::smollm2_gguf()).unwrap();
        Tokenizer::from_gguf(&gguf).unwrap()
    }

    #[test]
    fn memo_gives_what_encoding_gives_and_stays_bounded() {
        let tk = tokenizer();
        let memo = EncodeMemo::default();
        for text in ["Did they survive?", "yes", "Did they survive?", " yes ", ""] {
            let fresh = tk.encode(text, false).unwrap();
            assert_eq!(
                &*memo.encode(&tk, text).unwrap(),
                fresh.as_slice(),
                "{text:?}"
            );
        }
        assert_eq!(memo.len(), 4, "each distinct text once");
        let long = "word ".repeat(MAX_TEXT_BYTES);
        let fresh = tk.encode(&long, false).unwrap();
        assert_eq!(&*memo.encode(&tk, &long).unwrap(), fresh.as_slice());
        assert_eq!(memo.len(), 4, "long texts are not kept");
        for i in 0..MAX_ENTRIES + 10 {
            memo.encode(&tk, &format!("row {i}")).unwrap();
        }
        assert_eq!(memo.len(), MAX_ENTRIES);
        let past = format!("row {}", MAX_ENTRIES + 5);
        let fresh = tk.encode(&past, false).unwrap();
        assert_eq!(&*memo.encode(&tk, &past).unwrap(), fresh.as_slice());
    }
}
