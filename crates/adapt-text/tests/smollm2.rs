//! The tokenizer, chat template and streaming detokenizer on the real SmolLM2 GGUF, compared
//! with Hugging Face transformers' output in `data/smollm2_reference.json` (regenerate it with
//! `gen_reference.py`). The model path can be overridden with `ADAPT_SMOLLM2_GGUF`.

use std::sync::OnceLock;
use std::time::Instant;

use adapt_gguf::GgufFile;
use adapt_text::{ChatMessage, ChatTemplate, StreamingDetokenizer, Tokenizer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    special: Special,
    encode: Vec<EncodeCase>,
    chat: Vec<ChatCase>,
}

#[derive(Deserialize)]
struct Special {
    bos_token: String,
    bos_token_id: u32,
    eos_token: String,
    eos_token_id: u32,
    vocab_size: usize,
}

#[derive(Deserialize)]
struct EncodeCase {
    text: String,
    ids: Vec<u32>,
    ids_with_special: Vec<u32>,
    decoded: String,
    decoded_skip_special: String,
}

#[derive(Deserialize)]
struct ChatCase {
    name: String,
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    rendered: String,
}

fn reference() -> Reference {
    serde_json::from_str(include_str!("data/smollm2_reference.json"))
        .expect("tests/data/smollm2_reference.json parses")
}

/// The GGUF and its tokenizer, loaded once for all tests.
fn loaded() -> &'static (GgufFile, Tokenizer) {
    static LOADED: OnceLock<(GgufFile, Tokenizer)> = OnceLock::new();
    LOADED.get_or_init(|| {
        let t0 = Instant::now();
        let gguf = GgufFile::open(adapt_testsupport::smollm2_gguf()).expect("the model opens");
        let t1 = Instant::now();
        let tokenizer = Tokenizer::from_gguf(&gguf).expect("the tokenizer loads");
        eprintln!(
            "GgufFile::open: {:?}, Tokenizer::from_gguf: {:?}",
            t1 - t0,
            t1.elapsed()
        );
        (gguf, tokenizer)
    })
}

fn tokenizer() -> &'static Tokenizer {
    &loaded().1
}

/// Strings beyond the reference set, for round trips.
const EXTRA_TEXTS: &[&str] = &[
    "👩🏽‍🚀👨🏻‍🦰🫶🏾 🇫🇷🇯🇵 🏴‍☠️ 1️⃣ ✌🏿",
    "\n\n\n\n",
    "\t",
    "                                                                ",
    "trailing newline\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
    "<|endoftext|><|endoftext|><repo_name>x<file_sep>",
    "ʕ•ᴥ•ʔ (╯°□°)╯︵ ┻━┻ ¯\\_(ツ)_/¯",
    "Ελληνικά, Русский, हिन्दी, ไทย, ქართული",
    "0000000000 9999999999 ½ ⅓ ² ³ ٣ ४",
    "\u{0}\u{1}\u{7f}\u{200b}\u{feff}",
];

fn all_texts() -> Vec<String> {
    let mut texts: Vec<String> = reference().encode.into_iter().map(|c| c.text).collect();
    texts.extend(EXTRA_TEXTS.iter().map(|s| s.to_string()));
    texts
}

#[test]
fn special_tokens_and_vocabulary() {
    let r = reference().special;
    let tok = tokenizer();
    assert_eq!(tok.bos_token(), Some(r.bos_token.as_str()));
    assert_eq!(tok.bos_token_id(), Some(r.bos_token_id));
    assert_eq!(tok.eos_token(), Some(r.eos_token.as_str()));
    assert_eq!(tok.eos_token_ids().first(), Some(&r.eos_token_id));
    assert_eq!(tok.vocab_size(), r.vocab_size);
    assert!(!tok.add_bos_token());
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(tok.id_to_token(2).as_deref(), Some("<|im_end|>"));
    assert_eq!(tok.token_to_id("Ġworld"), Some(905));
    assert!(tok.is_special(0) && !tok.is_special(905));
    assert!(tok.id_to_token(49152).is_none());
}

#[test]
fn ids_match_hugging_face() {
    let tok = tokenizer();
    for case in reference().encode {
        let text = &case.text;
        assert_eq!(
            tok.encode(text, false).ok(),
            Some(case.ids.clone()),
            "{text:?}"
        );
        assert_eq!(
            tok.encode(text, true).ok(),
            Some(case.ids_with_special),
            "{text:?}"
        );
        assert_eq!(
            tok.decode(&case.ids, false).ok(),
            Some(case.decoded),
            "{text:?}"
        );
        assert_eq!(
            tok.decode(&case.ids, true).ok(),
            Some(case.decoded_skip_special),
            "{text:?}"
        );
    }
}

#[test]
fn round_trips() {
    let tok = tokenizer();
    for text in all_texts() {
        let ids = tok.encode(&text, false).expect("encodes");
        assert_eq!(
            tok.decode(&ids, false).ok().as_deref(),
            Some(text.as_str()),
            "{ids:?}"
        );
    }
    // Special tokens written in the text are single ids.
    let ids = tok.encode("<|im_start|>user", false).expect("encodes");
    assert_eq!(ids, vec![1, 4093]);
    assert_eq!(tok.decode(&ids, true).ok().as_deref(), Some("user"));
    // Unknown ids are skipped, as Hugging Face does.
    assert_eq!(
        tok.decode(&[4093, 999_999], false).ok().as_deref(),
        Some("user")
    );
}

#[test]
fn chat_template_matches_hugging_face() {
    let (gguf, tok) = loaded();
    let source = gguf.get_str("tokenizer.chat_template").expect("template");
    assert_eq!(tok.chat_template(), Some(source));
    let template = ChatTemplate::new(source, tok.bos_token(), tok.eos_token()).expect("compiles");
    let cases = reference().chat;
    assert_eq!(cases.len(), 4);
    for case in cases {
        let rendered = template
            .render(&case.messages, case.add_generation_prompt)
            .expect("renders");
        assert_eq!(
            rendered, case.rendered,
            "{} {}",
            case.name, case.add_generation_prompt
        );
    }
}

fn stream(tok: &Tokenizer, ids: &[u32], skip: bool) -> Vec<String> {
    let mut detok = StreamingDetokenizer::new(tok, skip);
    let mut pieces: Vec<String> = ids
        .iter()
        .map(|&id| detok.push(id).expect("push"))
        .collect();
    pieces.push(detok.finish().expect("finish"));
    pieces
}

#[test]
fn streaming_pieces_concatenate_to_decode() {
    let tok = tokenizer();
    let mut everything = Vec::new();
    for text in all_texts() {
        let ids = tok.encode(&text, false).expect("encodes");
        everything.extend_from_slice(&ids);
        for skip in [false, true] {
            let pieces = stream(tok, &ids, skip);
            assert_eq!(
                pieces.concat(),
                tok.decode(&ids, skip).expect("decodes"),
                "{text:?}"
            );
            assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
        }
    }
    let pieces = stream(tok, &everything, false);
    assert_eq!(
        pieces.concat(),
        tok.decode(&everything, false).expect("decodes")
    );
    // A 4-byte emoji split over several tokens comes out whole, once complete.
    let ids = tok.encode("🤖", false).expect("encodes");
    assert!(ids.len() > 1);
    let pieces = stream(tok, &ids, false);
    assert!(pieces[..ids.len() - 1].iter().all(String::is_empty));
    assert_eq!(pieces[ids.len() - 1], "🤖");
}

#[test]
fn streaming_arbitrary_ids_matches_decode() {
    // Random ids include stray UTF-8 continuation bytes: the replacement characters must
    // come out exactly where `decode` puts them.
    let tok = tokenizer();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let ids: Vec<u32> = (0..3000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 49_200) as u32
        })
        .collect();
    for skip in [false, true] {
        assert_eq!(
            stream(tok, &ids, skip).concat(),
            tok.decode(&ids, skip).expect("decodes")
        );
    }
}
