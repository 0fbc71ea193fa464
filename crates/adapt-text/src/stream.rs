//! [`StreamingDetokenizer`]: turns generated token ids into text as they arrive.

use crate::{bytelevel, TextError, Tokenizer};

/// Turns token ids, pushed one at a time, into newly completed text.
///
/// It never emits a broken UTF-8 character: bytes of a character split over several tokens
/// (byte-level BPE pieces, or SentencePiece byte-fallback tokens like `<0xE2>`) are held back
/// until the character completes. [`finish`](Self::finish) flushes what is left. The pieces
/// returned by `push` and `finish`, concatenated, equal
/// [`Tokenizer::decode`] of all the ids with the same `skip_special_tokens`.
///
/// Cost per token is constant: byte-level tokenizers are decoded token by token through a
/// small byte buffer; others decode only a short window of the latest ids.
#[derive(Debug, Clone)]
pub struct StreamingDetokenizer {
    tokenizer: Tokenizer,
    skip_special_tokens: bool,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    /// Byte-level: bytes not yet emitted (at most an incomplete character).
    Bytes { pending: Vec<u8> },
    /// Any decoder: the ids of the current window. `prefix` ids are already emitted and give
    /// context (e.g. a leading space); `read` is where the already-emitted text ends.
    Window {
        ids: Vec<u32>,
        prefix: usize,
        read: usize,
    },
}

impl StreamingDetokenizer {
    /// A detokenizer for `tokenizer`'s ids (the tokenizer's data is shared, not copied).
    pub fn new(tokenizer: &Tokenizer, skip_special_tokens: bool) -> StreamingDetokenizer {
        let state = if tokenizer.inner.byte_level {
            State::Bytes {
                pending: Vec::new(),
            }
        } else {
            State::Window {
                ids: Vec::new(),
                prefix: 0,
                read: 0,
            }
        };
        StreamingDetokenizer {
            tokenizer: tokenizer.clone(),
            skip_special_tokens,
            state,
        }
    }

    /// Adds one token id; returns the text it completes (often empty while a character is
    /// still incomplete).
    pub fn push(&mut self, id: u32) -> Result<String, TextError> {
        let skip = self.skip_special_tokens;
        match &mut self.state {
            State::Bytes { pending } => {
                let tk = &self.tokenizer;
                if !(skip && tk.is_special(id)) {
                    if let Some(token) = tk.inner.tk.id_to_token(id) {
                        bytelevel::push_token_bytes(&token, pending);
                    }
                }
                let mut out = String::new();
                drain_utf8(pending, &mut out, false);
                Ok(out)
            }
            State::Window { ids, prefix, read } => {
                ids.push(id);
                let tk = &self.tokenizer;
                let before = tk.decode(&ids[*prefix..*read], skip)?;
                let now = tk.decode(&ids[*prefix..], skip)?;
                if now.len() > before.len() && !now.ends_with('\u{FFFD}') {
                    if let Some(new) = now.strip_prefix(before.as_str()) {
                        let new = new.to_string();
                        // Keep one emitted id as context; forget the rest.
                        ids.drain(..*read);
                        *prefix = 0;
                        *read = ids.len();
                        return Ok(new);
                    }
                }
                Ok(String::new())
            }
        }
    }

    /// Flushes held-back text (an incomplete character becomes U+FFFD, as in `decode`) and
    /// resets the detokenizer for a new sequence.
    pub fn finish(&mut self) -> Result<String, TextError> {
        let skip = self.skip_special_tokens;
        let mut out = String::new();
        match &mut self.state {
            State::Bytes { pending } => drain_utf8(pending, &mut out, true),
            State::Window { ids, prefix, read } => {
                let before = self.tokenizer.decode(&ids[*prefix..*read], skip)?;
                let now = self.tokenizer.decode(&ids[*prefix..], skip)?;
                let common = common_prefix_len(&before, &now);
                out.push_str(now.get(common..).unwrap_or_default());
                ids.clear();
                *prefix = 0;
                *read = 0;
            }
        }
        Ok(out)
    }
}

/// Moves the complete UTF-8 at the front of `pending` into `out`, replacing invalid
/// sequences with U+FFFD exactly as `String::from_utf8_lossy` does. An incomplete character
/// at the end is kept, unless `at_end`, when it too becomes U+FFFD.
fn drain_utf8(pending: &mut Vec<u8>, out: &mut String, at_end: bool) {
    let mut start = 0;
    while start < pending.len() {
        match std::str::from_utf8(&pending[start..]) {
            Ok(s) => {
                out.push_str(s);
                start = pending.len();
            }
            Err(e) => {
                let valid = e.valid_up_to();
                out.push_str(&String::from_utf8_lossy(&pending[start..start + valid]));
                start += valid;
                match e.error_len() {
                    Some(n) => {
                        out.push('\u{FFFD}');
                        start += n;
                    }
                    None if at_end => {
                        out.push('\u{FFFD}');
                        start = pending.len();
                    }
                    None => break,
                }
            }
        }
    }
    pending.drain(..start);
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map_or_else(|| a.len().min(b.len()), |((i, _), _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy_in_pieces(bytes: &[u8], cuts: &[usize]) -> String {
        let mut pending = Vec::new();
        let mut out = String::new();
        let mut last = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            pending.extend_from_slice(&bytes[last..cut]);
            drain_utf8(&mut pending, &mut out, false);
            last = cut;
        }
        drain_utf8(&mut pending, &mut out, true);
        out
    }

    #[test]
    fn incremental_lossy_matches_from_utf8_lossy() {
        let samples: Vec<Vec<u8>> = vec![
            "héllo 👍🏽 世界".as_bytes().to_vec(),
            vec![0xE2, 0x82],
            vec![b'a', 0xFF, b'b', 0xE2, 0x82, b'c', 0xF0, 0x9F, 0x98],
            vec![0xED, 0xA0, 0x80, b'x'],
            vec![0xC0, 0xAF, 0xF4, 0x90, 0x80, 0x80],
        ];
        for bytes in samples {
            let want = String::from_utf8_lossy(&bytes).into_owned();
            for a in 0..=bytes.len() {
                for b in a..=bytes.len() {
                    assert_eq!(
                        lossy_in_pieces(&bytes, &[a, b]),
                        want,
                        "{bytes:?} cut {a} {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn incomplete_character_is_held_back() {
        let mut pending = vec![b'a', 0xE2, 0x82];
        let mut out = String::new();
        drain_utf8(&mut pending, &mut out, false);
        assert_eq!((out.as_str(), pending.as_slice()), ("a", &[0xE2, 0x82][..]));
        pending.push(0xAC);
        drain_utf8(&mut pending, &mut out, false);
        assert_eq!(out, "a€");
        assert!(pending.is_empty());
    }

    #[test]
    fn common_prefix() {
        assert_eq!(common_prefix_len("abc", "abd"), 2);
        assert_eq!(common_prefix_len("ab", "abc"), 2);
        assert_eq!(common_prefix_len("é", "ê"), 0);
        assert_eq!(common_prefix_len("", "x"), 0);
    }
}
