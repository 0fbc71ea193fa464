//! Rebuilding a tokenizer from llama.cpp's GGUF metadata: [`Tokenizer::from_gguf`].
//!
//! * `tokenizer.ggml.model = "gpt2"`: byte-level BPE from `tokenizer.ggml.tokens` and
//!   `tokenizer.ggml.merges`; the pre-tokenizer is chosen from `tokenizer.ggml.pre` as llama.cpp
//!   does (see [`pre_tokenizer`]).
//! * `tokenizer.ggml.model = "llama"` (Llama 2, Gemma, Phi-3): SentencePiece as BPE with byte
//!   fallback, merges taken from the file or derived from `tokenizer.ggml.scores`; spaces as
//!   llama.cpp writes them (each piece of text between added tokens gets the prefix space when
//!   `tokenizer.ggml.add_space_prefix`, every space becomes "▁"). Checked against the
//!   `sentencepiece` library on models it trained.
//!
//! Token types (`tokenizer.ggml.token_type`): 3 (control) become special added tokens, 4
//! (user-defined) plain added tokens, so both are matched whole when written in text.

use std::collections::HashSet;
use std::path::PathBuf;

use adapt_gguf::GgufFile;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::prepend::Prepend;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::{NormalizerWrapper, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::tokenizer::{Parts, Tokenizer};
use crate::{bytelevel, TextError};

const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How text is split before BPE, by `tokenizer.ggml.pre` name.
enum PreKind {
    /// GPT-2's regex (Hugging Face's `ByteLevel` pre-tokenizer).
    Gpt2,
    /// Every digit on its own, then GPT-2's regex (SmolLM, StarCoder, …).
    DigitsGpt2,
    /// A model-specific regex, then byte-level spelling.
    Regex(&'static str),
}

const PRE_TOKENIZERS: &[(&str, PreKind)] = &[
    ("default", PreKind::Gpt2),
    ("gpt2", PreKind::Gpt2),
    ("gpt-2", PreKind::Gpt2),
    ("mpt", PreKind::Gpt2),
    ("olmo", PreKind::Gpt2),
    ("jais", PreKind::Gpt2),
    ("trillion", PreKind::Gpt2),
    ("smollm", PreKind::DigitsGpt2),
    ("starcoder", PreKind::DigitsGpt2),
    ("refact", PreKind::DigitsGpt2),
    ("command-r", PreKind::DigitsGpt2),
    ("codeshell", PreKind::DigitsGpt2),
    ("exaone", PreKind::DigitsGpt2),
    ("minerva-7b", PreKind::DigitsGpt2),
    ("llama3", PreKind::Regex(LLAMA3_SPLIT)),
    ("llama-v3", PreKind::Regex(LLAMA3_SPLIT)),
    ("llama-bpe", PreKind::Regex(LLAMA3_SPLIT)),
    ("falcon3", PreKind::Regex(LLAMA3_SPLIT)),
    ("falcon-h1", PreKind::Regex(LLAMA3_SPLIT)),
    ("pixtral", PreKind::Regex(LLAMA3_SPLIT)),
    ("midm-2.0", PreKind::Regex(LLAMA3_SPLIT)),
    ("lfm2", PreKind::Regex(LLAMA3_SPLIT)),
    ("dbrx", PreKind::Regex(LLAMA3_SPLIT)),
    ("smaug-bpe", PreKind::Regex(LLAMA3_SPLIT)),
    ("qwen2", PreKind::Regex(QWEN2_SPLIT)),
    ("deepseek-r1-qwen", PreKind::Regex(QWEN2_SPLIT)),
    ("megrez", PreKind::Regex(QWEN2_SPLIT)),
    ("qwen35", PreKind::Regex(QWEN35_SPLIT)),
    ("tekken", PreKind::Regex(TEKKEN_SPLIT)),
    ("gpt-4o", PreKind::Regex(GPT4O_SPLIT)),
    ("llama4", PreKind::Regex(GPT4O_SPLIT)),
];

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.*` metadata.
    ///
    /// Supports `tokenizer.ggml.model` = `gpt2` (byte-level BPE, with the pre-tokenizer named by
    /// `tokenizer.ggml.pre`) and, best-effort, `llama` (SentencePiece BPE with byte fallback).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Tokenizer, TextError> {
        build(gguf)
    }
}

fn build(g: &GgufFile) -> Result<Tokenizer, TextError> {
    let path = || g.path().to_path_buf();
    let model = g
        .get_str("tokenizer.ggml.model")
        .ok_or_else(|| missing(g, "tokenizer.ggml.model"))?;
    let tokens = g
        .get_string_array("tokenizer.ggml.tokens")
        .ok_or_else(|| missing(g, "tokenizer.ggml.tokens"))?;
    let types = match g.get_array("tokenizer.ggml.token_type") {
        None => vec![1; tokens.len()],
        Some(a) => a.to_i64_vec().unwrap_or_default(),
    };
    if types.len() != tokens.len() {
        return Err(bad(
            g,
            format!(
                "tokenizer.ggml.token_type has {} entries but there are {} tokens",
                types.len(),
                tokens.len()
            ),
        ));
    }
    let n = tokens.len();
    let special_id = |key: &str| -> Result<Option<u32>, TextError> {
        match g.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64().and_then(|id| u32::try_from(id).ok()) {
                Some(id) if (id as usize) < n => Ok(Some(id)),
                // llama.cpp writes -1 for "none" in some files.
                _ if v.as_i64() == Some(-1) => Ok(None),
                _ => Err(bad(g, format!("{key} is {v:?}, outside the {n} tokens"))),
            },
        }
    };
    let bos = special_id("tokenizer.ggml.bos_token_id")?;
    let eos = special_id("tokenizer.ggml.eos_token_id")?;
    let unk = special_id("tokenizer.ggml.unknown_token_id")?;
    let pad = special_id("tokenizer.ggml.padding_token_id")?;
    let mut eos_ids: Vec<u32> = eos.into_iter().collect();
    for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        if let Some(id) = special_id(key)? {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
    }

    let (mut tk, byte_level, default_add_bos) = match model {
        "gpt2" => (byte_level_bpe(g, tokens, &types)?, true, false),
        "llama" => (sentencepiece_bpe(g, tokens, unk)?, false, true),
        other => {
            return Err(TextError::UnsupportedTokenizer {
                path: path(),
                model: other.to_string(),
            })
        }
    };

    // Control tokens are special; user-defined ones are matched whole but not special. The
    // named special tokens are special too (as Hugging Face registers them).
    let named: HashSet<u32> = [bos, eos, unk, pad].into_iter().flatten().collect();
    let mut special = Vec::new();
    let mut plain = Vec::new();
    for (id, (token, &ty)) in tokens.iter().zip(&types).enumerate() {
        let is_named = u32::try_from(id).is_ok_and(|id| named.contains(&id));
        if ty == TOKEN_TYPE_CONTROL || is_named {
            if byte_level && ty != TOKEN_TYPE_CONTROL && !bytelevel::is_spelled(token) {
                continue;
            }
            special.push(AddedToken::from(token.clone(), true).normalized(false));
        } else if ty == TOKEN_TYPE_USER_DEFINED {
            plain.push(AddedToken::from(token.clone(), false).normalized(false));
        }
    }
    tk.add_special_tokens(&special);
    tk.add_tokens(&plain);

    let add_bos = g
        .get_bool("tokenizer.ggml.add_bos_token")
        .unwrap_or(default_add_bos);
    let add_eos = g.get_bool("tokenizer.ggml.add_eos_token").unwrap_or(false);
    Ok(Tokenizer::assemble(Parts {
        tk,
        bos_id: bos,
        eos_ids,
        add_bos,
        add_eos,
        manual_specials: true,
        chat_template: g.get_str("tokenizer.chat_template").map(str::to_string),
        vocab_size: Some(n),
    }))
}

fn missing(g: &GgufFile, key: &str) -> TextError {
    TextError::MissingMetadata {
        path: g.path().to_path_buf(),
        key: key.to_string(),
    }
}

fn bad(g: &GgufFile, reason: String) -> TextError {
    TextError::BadTokenizerData {
        path: g.path().to_path_buf(),
        reason,
    }
}

fn library_error(path: PathBuf, e: impl std::fmt::Display) -> TextError {
    TextError::BadTokenizerData {
        path,
        reason: e.to_string(),
    }
}

/// Byte-level BPE ("gpt2").
fn byte_level_bpe(
    g: &GgufFile,
    tokens: &[String],
    types: &[i64],
) -> Result<tokenizers::Tokenizer, TextError> {
    let pre_name = g.get_str("tokenizer.ggml.pre").unwrap_or("default");
    let pre = pre_tokenizer(pre_name).ok_or_else(|| TextError::UnsupportedPreTokenizer {
        path: g.path().to_path_buf(),
        pre: pre_name.to_string(),
        supported: PRE_TOKENIZERS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", "),
    })?;

    // Normal tokens are spelled in the byte alphabet; one that is not gets respelled so BPE can
    // reach it. Control and user-defined tokens keep their text: they are matched whole.
    let mut vocab = Vocab::with_capacity(tokens.len());
    for (id, (token, &ty)) in tokens.iter().zip(types).enumerate() {
        let keep = ty == TOKEN_TYPE_CONTROL
            || ty == TOKEN_TYPE_USER_DEFINED
            || bytelevel::is_spelled(token);
        let key = if keep {
            token.clone()
        } else {
            bytelevel::spell(token)
        };
        vocab.insert(key, id as u32);
    }
    let merges = g
        .get_string_array("tokenizer.ggml.merges")
        .ok_or_else(|| missing(g, "tokenizer.ggml.merges"))?;
    // Merges whose parts are not in the vocabulary can never apply (llama.cpp ignores them);
    // the BPE builder would reject them, so drop them here.
    let mut pairs = Vec::with_capacity(merges.len());
    let mut joined = String::new();
    for merge in merges {
        let Some((a, b)) = merge.split_once(' ') else {
            continue;
        };
        joined.clear();
        joined.push_str(a);
        joined.push_str(b);
        if vocab.contains_key(a) && vocab.contains_key(b) && vocab.contains_key(&joined) {
            pairs.push((a.to_string(), b.to_string()));
        }
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .build()
        .map_err(|e| library_error(g.path().to_path_buf(), e))?;

    let mut tk = tokenizers::Tokenizer::new(bpe);
    tk.with_pre_tokenizer(Some(pre));
    tk.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
    Ok(tk)
}

/// The pre-tokenizer llama.cpp uses for `name`, in Hugging Face form.
fn pre_tokenizer(name: &str) -> Option<PreTokenizerWrapper> {
    let kind = &PRE_TOKENIZERS.iter().find(|(n, _)| *n == name)?.1;
    let gpt2 = || PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true));
    Some(match kind {
        PreKind::Gpt2 => gpt2(),
        PreKind::DigitsGpt2 => PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            gpt2(),
        ])),
        PreKind::Regex(re) => {
            let split = Split::new(
                SplitPattern::Regex((*re).to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .ok()?;
            PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Split(split),
                PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
            ]))
        }
    })
}

/// SentencePiece ("llama") as BPE with byte fallback.
fn sentencepiece_bpe(
    g: &GgufFile,
    tokens: &[String],
    unk: Option<u32>,
) -> Result<tokenizers::Tokenizer, TextError> {
    let mut vocab = Vocab::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        vocab.insert(token.clone(), id as u32);
    }
    let merges = match g.get_string_array("tokenizer.ggml.merges") {
        Some(m) => m
            .iter()
            .filter_map(|m| m.split_once(' '))
            .filter(|(a, b)| {
                vocab.contains_key(*a)
                    && vocab.contains_key(*b)
                    && vocab.contains_key(&format!("{a}{b}"))
            })
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        None => {
            let scores = g
                .get_f32_array("tokenizer.ggml.scores")
                .ok_or_else(|| missing(g, "tokenizer.ggml.scores"))?;
            if scores.len() != tokens.len() {
                let reason = format!(
                    "tokenizer.ggml.scores has {} entries but there are {} tokens",
                    scores.len(),
                    tokens.len()
                );
                return Err(bad(g, reason));
            }
            merges_from_scores(tokens, scores, &vocab)
        }
    };
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(true);
    if let Some(unk) = unk.and_then(|id| tokens.get(id as usize)) {
        builder = builder.unk_token(unk.clone());
    }
    let bpe = builder
        .build()
        .map_err(|e| library_error(g.path().to_path_buf(), e))?;

    let prefix_space = g
        .get_bool("tokenizer.ggml.add_space_prefix")
        .unwrap_or(true);
    let bad_pattern = |e| library_error(g.path().to_path_buf(), e);
    // As SentencePiece (and llama.cpp): one space before the text when the model has the
    // dummy prefix, every space written as "▁", and no splitting before BPE.
    let mut normalizers = Vec::new();
    if prefix_space {
        normalizers.push(NormalizerWrapper::Prepend(Prepend::new("▁".into())));
    }
    normalizers.push(NormalizerWrapper::Replace(
        Replace::new(" ", "▁").map_err(bad_pattern)?,
    ));
    let replace = Replace::new("▁", " ").map_err(bad_pattern)?;
    let mut decoders = vec![
        DecoderWrapper::Replace(replace),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ];
    if prefix_space {
        decoders.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
    }
    let mut tk = tokenizers::Tokenizer::new(bpe);
    tk.with_normalizer(Some(NormalizerSequence::new(normalizers)));
    tk.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tk)
}

/// Merges implied by a scored vocabulary, best first: every way of cutting a token into two
/// tokens is a merge ranked by the whole token's score (ties: shorter left part, then shorter
/// right part come later; then file order), as Hugging Face derives them.
fn merges_from_scores(tokens: &[String], scores: &[f32], vocab: &Vocab) -> Vec<(String, String)> {
    let mut seen = HashSet::with_capacity(tokens.len());
    let mut merges: Vec<(&str, &str, f32)> = Vec::new();
    for token in tokens {
        if !seen.insert(token.as_str()) {
            continue;
        }
        let Some(&last_id) = vocab.get(token) else {
            continue;
        };
        let score = scores.get(last_id as usize).copied().unwrap_or(0.0);
        let start = merges.len();
        for (cut, _) in token.char_indices().skip(1) {
            let (l, r) = token.split_at(cut);
            if vocab.contains_key(l) && vocab.contains_key(r) {
                merges.push((l, r, score));
            }
        }
        let id = |s: &str| vocab.get(s).copied().unwrap_or(u32::MAX);
        merges[start..].sort_by_key(|(l, r, _)| (id(l), id(r)));
    }
    let key = |m: &(&str, &str, f32)| (m.2, m.0.chars().count(), m.1.chars().count());
    merges.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.cmp(&ka.1))
            .then(kb.2.cmp(&ka.2))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

#[cfg(test)]
mod tests;
