//! GPT-2's byte-level alphabet: every byte is spelled as one printable character.
//!
//! Printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves; the other 68
//! bytes, in increasing order, are spelled U+0100, U+0101, … (so a space is `Ġ`, U+0120).

use std::sync::OnceLock;

/// Highest code point used by the alphabet, plus one.
const SPAN: usize = 0x144;

struct Tables {
    to_char: [char; 256],
    /// Indexed by code point; `u16::MAX` where the code point is not in the alphabet.
    to_byte: [u16; SPAN],
}

fn is_self_printed(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut to_char = ['\0'; 256];
        let mut to_byte = [u16::MAX; SPAN];
        let mut next = 0x100u32;
        for b in 0..=255u8 {
            let cp = if is_self_printed(b) {
                u32::from(b)
            } else {
                next += 1;
                next - 1
            };
            to_char[usize::from(b)] = char::from_u32(cp).unwrap_or('\0');
            to_byte[cp as usize] = u16::from(b);
        }
        Tables { to_char, to_byte }
    })
}

/// The byte that `c` spells, if `c` is in the alphabet.
pub(crate) fn byte_of(c: char) -> Option<u8> {
    let t = tables();
    t.to_byte
        .get(c as usize)
        .and_then(|&b| u8::try_from(b).ok())
}

/// The character that spells byte `b`.
#[cfg(test)]
pub(crate) fn char_of(b: u8) -> char {
    tables().to_char[usize::from(b)]
}

/// Whether every character of `token` is in the alphabet.
pub(crate) fn is_spelled(token: &str) -> bool {
    token.chars().all(|c| byte_of(c).is_some())
}

/// Spells `text`'s UTF-8 bytes in the alphabet.
pub(crate) fn spell(text: &str) -> String {
    let t = tables();
    text.bytes().map(|b| t.to_char[usize::from(b)]).collect()
}

/// Appends the bytes a token stands for, as the ByteLevel decoder does: a token made only of
/// alphabet characters yields the bytes they spell, any other token its own UTF-8.
pub(crate) fn push_token_bytes(token: &str, out: &mut Vec<u8>) {
    if is_spelled(token) {
        out.extend(token.chars().filter_map(byte_of));
    } else {
        out.extend_from_slice(token.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_is_a_bijection() {
        for b in 0..=255u8 {
            let c = tables().to_char[usize::from(b)];
            assert_eq!(byte_of(c), Some(b));
        }
        assert_eq!(spell(" "), "Ġ");
        assert_eq!(spell("\n"), "Ċ");
        assert_eq!(spell("é"), "Ã©");
        assert_eq!(byte_of('a'), Some(b'a'));
        assert_eq!(byte_of('€'), None);
        let mut out = Vec::new();
        push_token_bytes("ĠhÃ©", &mut out);
        push_token_bytes("<|im_end|>", &mut out);
        push_token_bytes("€", &mut out);
        assert_eq!(String::from_utf8(out).as_deref(), Ok(" hé<|im_end|>€"));
    }
}
