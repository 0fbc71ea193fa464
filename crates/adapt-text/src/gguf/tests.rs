//! Tokenizers built from small synthetic GGUF files.

use adapt_gguf::test_util::GgufBuilder;
use adapt_gguf::{GgufArray, GgufFile, GgufValue};

use super::*;
use crate::StreamingDetokenizer;

fn open(builder: &GgufBuilder) -> (tempfile::TempDir, GgufFile) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tok.gguf");
    std::fs::write(&path, builder.build()).expect("write");
    let file = GgufFile::open(&path).expect("opens");
    (dir, file)
}

fn ints(v: &[i32]) -> GgufValue {
    GgufValue::Array(GgufArray::I32(v.to_vec()))
}

/// A byte-level vocabulary: the 256 byte characters (ids 0-255), then merged tokens.
fn gpt2(pre: &str) -> GgufBuilder {
    let merged = [
        "he", "ll", "hell", "hello", "Ġw", "or", "Ġwor", "ld", "Ġworld", "12", "123", "1234",
    ];
    let mut tokens: Vec<String> = (0..=255u8)
        .map(|b| bytelevel::char_of(b).to_string())
        .collect();
    tokens.extend(merged.iter().map(|s| s.to_string()));
    tokens.push("<|end|>".into()); // 268, control
    tokens.push("<think>".into()); // 269, user-defined
    let mut types = vec![1; tokens.len()];
    types[268] = 3;
    types[269] = 4;
    let merges = [
        "h e",
        "l l",
        "he ll",
        "hell o",
        "Ġ w",
        "o r",
        "Ġw or",
        "l d",
        "Ġwor ld",
        "1 2",
        "12 3",
        "123 4",
        "x yz",
        "malformed",
    ];
    GgufBuilder::new()
        .kv_str("general.architecture", "llama")
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_str("tokenizer.ggml.pre", pre)
        .kv_strings("tokenizer.ggml.tokens", &tokens)
        .kv("tokenizer.ggml.token_type", ints(&types))
        .kv_strings("tokenizer.ggml.merges", &merges)
        .kv("tokenizer.ggml.eos_token_id", GgufValue::U32(268))
        .kv("tokenizer.ggml.add_eos_token", GgufValue::Bool(true))
        .kv_str("tokenizer.chat_template", "{{ messages[0].content }}")
}

#[test]
fn byte_level_bpe_from_gguf() {
    let (_dir, g) = open(&gpt2("default"));
    let tok = Tokenizer::from_gguf(&g).expect("builds");
    assert_eq!(tok.vocab_size(), 270);
    assert_eq!(tok.encode("hello world", false).ok(), Some(vec![259, 264]));
    assert_eq!(
        tok.encode("hello world", true).ok(),
        Some(vec![259, 264, 268])
    );
    assert_eq!(tok.bos_token_id(), None);
    assert_eq!(
        (tok.eos_token(), tok.eos_token_ids()),
        (Some("<|end|>"), &[268][..])
    );
    assert_eq!(tok.chat_template(), Some("{{ messages[0].content }}"));
    let ids = tok.encode("<think>hello<|end|>", false).expect("encodes");
    assert_eq!(ids, vec![269, 259, 268]);
    assert_eq!(
        tok.decode(&ids, false).ok().as_deref(),
        Some("<think>hello<|end|>")
    );
    assert_eq!(tok.decode(&ids, true).ok().as_deref(), Some("<think>hello"));
    assert!(tok.is_special(268) && !tok.is_special(269));
    let text = "héllo wörld 🎉\n";
    let ids = tok.encode(text, false).expect("encodes");
    assert_eq!(tok.decode(&ids, false).ok().as_deref(), Some(text));
}

#[test]
fn pre_tokenizer_follows_tokenizer_ggml_pre() {
    for (pre, want) in [
        ("default", vec![267, 53]),
        ("gpt2", vec![267, 53]),
        ("smollm", vec![49, 50, 51, 52, 53]),
        ("llama-bpe", vec![266, 52, 53]),
        ("qwen2", vec![49, 50, 51, 52, 53]),
    ] {
        let (_dir, g) = open(&gpt2(pre));
        let tok = Tokenizer::from_gguf(&g).expect("builds");
        assert_eq!(tok.encode("12345", false).ok(), Some(want), "{pre}");
    }
    for (name, _) in PRE_TOKENIZERS {
        assert!(pre_tokenizer(name).is_some(), "{name} compiles");
    }
}

#[test]
fn unsupported_and_broken_files_are_clear_errors() {
    let (_dir, g) = open(&gpt2("no-such-pre"));
    let err = Tokenizer::from_gguf(&g).expect_err("unknown pre");
    assert_eq!(err.code(), "text.unsupported_pre_tokenizer");
    assert!(err.to_string().contains("'no-such-pre'") && err.to_string().contains("smollm"));

    let b = GgufBuilder::new()
        .kv_str("tokenizer.ggml.model", "bert")
        .kv_strings("tokenizer.ggml.tokens", &["a"]);
    let (_dir, g) = open(&b);
    let err = Tokenizer::from_gguf(&g).expect_err("bert");
    assert_eq!(err.code(), "text.unsupported_tokenizer");
    assert!(err.to_string().contains("tok.gguf"), "{err}");

    let (_dir, g) = open(&GgufBuilder::new().kv_str("tokenizer.ggml.model", "gpt2"));
    let err = Tokenizer::from_gguf(&g).expect_err("no tokens");
    assert_eq!(err.code(), "text.missing_metadata");
    assert!(err.to_string().contains("tokenizer.ggml.tokens"), "{err}");

    let b = GgufBuilder::new()
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_strings("tokenizer.ggml.tokens", &["a", "b"])
        .kv_strings("tokenizer.ggml.merges", &["a b"])
        .kv("tokenizer.ggml.bos_token_id", GgufValue::U32(7));
    let (_dir, g) = open(&b);
    let err = Tokenizer::from_gguf(&g).expect_err("bos out of range");
    assert_eq!(err.code(), "text.bad_tokenizer_data");
    assert!(err.to_string().contains("bos_token_id"), "{err}");

    let b = GgufBuilder::new()
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_strings("tokenizer.ggml.tokens", &["a", "b"])
        .kv("tokenizer.ggml.token_type", ints(&[1]));
    let (_dir, g) = open(&b);
    assert_eq!(
        Tokenizer::from_gguf(&g).map(|_| ()).map_err(|e| e.code()),
        Err("text.bad_tokenizer_data")
    );
}

const SPM_PIECES: &[&str] = &[
    "▁", "e", "l", "o", "h", "w", "r", "d", "t", "s", "i", "▁t", "he", "ll", "▁w", "or", "▁the",
    "llo", "▁h", "▁hello", "▁wor", "▁world", "▁▁", "is", "▁is", "▁this", "▁th", "hi", "ld", "▁he",
];

/// A SentencePiece vocabulary with scores and byte tokens (no merges in the file).
fn spm() -> GgufBuilder {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    tokens.extend(SPM_PIECES.iter().map(|s| s.to_string()));
    tokens.push("<tool>".into());
    let mut scores = vec![0.0f32; 259];
    scores.extend((0..SPM_PIECES.len()).map(|i| -(i as f32)));
    scores.push(0.0);
    let mut types = vec![2, 3, 3];
    types.extend(std::iter::repeat_n(6, 256));
    types.extend(std::iter::repeat_n(1, SPM_PIECES.len()));
    types.push(4);
    GgufBuilder::new()
        .kv_str("general.architecture", "llama")
        .kv_str("tokenizer.ggml.model", "llama")
        .kv_strings("tokenizer.ggml.tokens", &tokens)
        .kv(
            "tokenizer.ggml.scores",
            GgufValue::Array(GgufArray::F32(scores)),
        )
        .kv("tokenizer.ggml.token_type", ints(&types))
        .kv("tokenizer.ggml.bos_token_id", GgufValue::U32(1))
        .kv("tokenizer.ggml.eos_token_id", GgufValue::U32(2))
        .kv("tokenizer.ggml.unknown_token_id", GgufValue::U32(0))
}

/// Expected ids as llama.cpp tokenizes with this vocabulary: each piece of text between added
/// tokens gets one prefix space, spaces become "▁", and the highest-scoring piece is merged
/// first (SentencePiece's BPE; `tests/sentencepiece.rs` checks real SentencePiece models).
/// " hello  world" is "▁▁hello▁▁world": "▁▁" (score −22) merges before "▁he" (−29).
/// Transformers' GGUF converter differs in two places: no prefix space before text that
/// starts with one, and none after an added token.
const SPM_REFERENCE: &[(&str, &[u32], &str, &str)] = &[
    (
        "hello world",
        &[1, 278, 280],
        "<s> hello world",
        "hello world",
    ),
    (
        "this is the world",
        &[1, 284, 283, 275, 280],
        "<s> this is the world",
        "this is the world",
    ),
    (
        " hello  world",
        &[1, 281, 271, 276, 259, 280],
        "<s>  hello  world",
        " hello  world",
    ),
    (
        "hi 👍 é",
        &[1, 277, 269, 259, 243, 162, 148, 144, 259, 198, 172],
        "<s> hi 👍 é",
        "hi 👍 é",
    ),
    (
        "<tool>hello</s>",
        &[1, 289, 278, 2],
        "<s><tool> hello</s>",
        "<tool> hello",
    ),
    ("", &[1], "<s>", ""),
    (
        "hello\nworld",
        &[1, 278, 13, 264, 274, 287],
        "<s> hello\nworld",
        "hello\nworld",
    ),
];

#[test]
fn sentencepiece_from_gguf_follows_llama_cpp() {
    let (_dir, g) = open(&spm());
    let tok = Tokenizer::from_gguf(&g).expect("builds");
    assert!(tok.add_bos_token());
    assert_eq!(tok.bos_token(), Some("<s>"));
    for &(text, ids, decoded, skipped) in SPM_REFERENCE {
        assert_eq!(
            tok.encode(text, true).ok().as_deref(),
            Some(ids),
            "{text:?}"
        );
        assert_eq!(
            tok.decode(ids, false).ok().as_deref(),
            Some(decoded),
            "{text:?}"
        );
        assert_eq!(tok.decode(ids, true).expect("decodes"), skipped, "{text:?}");
    }
}

#[test]
fn streaming_with_byte_fallback_matches_decode() {
    let (_dir, g) = open(&spm());
    let tok = Tokenizer::from_gguf(&g).expect("builds");
    for text in [
        "hi 👍 é",
        "hello world",
        " hello  world\n\nthis",
        "é👍🏽é",
        "<tool>hello</s>",
    ] {
        let ids = tok.encode(text, true).expect("encodes");
        for skip in [false, true] {
            let mut detok = StreamingDetokenizer::new(&tok, skip);
            let mut pieces: Vec<String> = ids
                .iter()
                .map(|&id| detok.push(id).expect("push"))
                .collect();
            pieces.push(detok.finish().expect("finish"));
            assert_eq!(
                pieces.concat(),
                tok.decode(&ids, skip).expect("decodes"),
                "{text:?}"
            );
            assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
        }
    }
    // A lone lead byte is flushed by `finish`, as `decode` shows it.
    let mut detok = StreamingDetokenizer::new(&tok, false);
    assert_eq!(detok.push(243).ok().as_deref(), Some(""));
    assert_eq!(detok.finish().ok().as_deref(), Some("\u{FFFD}"));
    assert_eq!(tok.decode(&[243], false).ok().as_deref(), Some("\u{FFFD}"));
}
