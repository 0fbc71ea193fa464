//! Loading Hugging Face tokenizer files.

use std::path::Path;

use super::*;

/// A small byte-level BPE tokenizer.json whose post-processor adds `<s>`, with truncation to 4
/// tokens configured (which loading must switch off).
const TOKENIZER_JSON: &str = r#"{
  "version": "1.0",
  "truncation": {"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0},
  "padding": null,
  "added_tokens": [
    {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "<|eot|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
  "post_processor": {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}
  },
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {
    "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
    "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
    "vocab": {"<s>": 0, "</s>": 1, "<|eot|>": 2, "h": 3, "e": 4, "l": 5, "o": 6, "Ġ": 7, "w": 8,
              "r": 9, "d": 10, "he": 11, "ll": 12, "hell": 13, "hello": 14, "Ġw": 15, "or": 16,
              "Ġwor": 17, "ld": 18, "Ġworld": 19},
    "merges": ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"]
  }
}"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn tokenizer_json_alone_uses_its_post_processor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = write(dir.path(), "tokenizer.json", TOKENIZER_JSON);
    let tok = Tokenizer::from_files(&json, None).expect("loads");
    assert_eq!(tok.encode("hello world", false).ok(), Some(vec![14, 19]));
    assert_eq!(tok.encode("hello world", true).ok(), Some(vec![0, 14, 19]));
    let long = tok
        .encode("hello world hello world hello world", false)
        .expect("encodes");
    assert_eq!(long.len(), 8, "truncation must be off");
    assert_eq!(
        tok.decode(&[0, 14, 19, 2], true).ok().as_deref(),
        Some("hello world")
    );
    assert_eq!(tok.vocab_size(), 20);
    assert_eq!(tok.chat_template(), None);
    assert!(tok.eos_token_ids().is_empty());
}

#[test]
fn tokenizer_config_and_sibling_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = write(dir.path(), "tokenizer.json", TOKENIZER_JSON);
    let config = write(
        dir.path(),
        "tokenizer_config.json",
        r#"{"bos_token": "<s>", "eos_token": {"content": "</s>", "special": true},
            "add_bos_token": false, "add_eos_token": true,
            "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"#,
    );
    let tok = Tokenizer::from_files(&json, Some(&config)).expect("loads");
    assert_eq!(tok.encode("hello world", true).ok(), Some(vec![14, 19, 1]));
    assert!(!tok.add_bos_token());
    assert_eq!(
        (tok.bos_token(), tok.bos_token_id()),
        (Some("<s>"), Some(0))
    );
    assert_eq!(
        (tok.eos_token(), tok.eos_token_ids()),
        (Some("</s>"), &[1][..])
    );
    assert_eq!(tok.chat_template(), Some("D"));

    write(
        dir.path(),
        "config.json",
        r#"{"bos_token_id": 0, "eos_token_id": [1, 2]}"#,
    );
    write(
        dir.path(),
        "generation_config.json",
        r#"{"eos_token_id": 2}"#,
    );
    write(dir.path(), "chat_template.jinja", "J");
    let tok = Tokenizer::from_files(&json, Some(&config)).expect("loads");
    assert_eq!(tok.eos_token_ids(), &[1, 2]);
    assert_eq!(tok.chat_template(), Some("J"));
}

#[test]
fn bos_and_eos_from_model_config_when_there_is_no_tokenizer_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = write(dir.path(), "tokenizer.json", TOKENIZER_JSON);
    write(
        dir.path(),
        "config.json",
        r#"{"bos_token_id": 0, "eos_token_id": 2}"#,
    );
    let tok = Tokenizer::from_files(&json, None).expect("loads");
    assert_eq!(
        (tok.bos_token(), tok.bos_token_id()),
        (Some("<s>"), Some(0))
    );
    assert!(tok.add_bos_token(), "the post-processor adds <s>");
    assert_eq!(
        (tok.eos_token(), tok.eos_token_ids()),
        (Some("<|eot|>"), &[2][..])
    );
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("tokenizer.json");
    let err = Tokenizer::from_files(&missing, None).expect_err("missing");
    assert_eq!(err.code(), "text.io");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");

    let bad = write(
        dir.path(),
        "tokenizer.json",
        r#"{"model": {"type": "Nope"}}"#,
    );
    let err = Tokenizer::from_files(&bad, None).expect_err("bad tokenizer.json");
    assert_eq!(err.code(), "text.bad_tokenizer_json");

    let json = write(dir.path(), "tokenizer.json", TOKENIZER_JSON);
    let config = write(dir.path(), "tokenizer_config.json", "{not json");
    let err = Tokenizer::from_files(&json, Some(&config)).expect_err("bad config");
    assert_eq!(err.code(), "text.bad_json");
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
}

#[test]
fn shared_across_threads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = write(dir.path(), "tokenizer.json", TOKENIZER_JSON);
    let tok = Tokenizer::from_files(&json, None).expect("loads");
    let clone = tok.clone();
    let ids = std::thread::spawn(move || clone.encode("hello", false).ok())
        .join()
        .ok()
        .flatten();
    assert_eq!(ids, Some(vec![14]));
    assert!(format!("{tok:?}").contains("vocab_size: 20"));
}
