//! [`Tokenizer`]: text ⇄ token ids, built from a GGUF file or from Hugging Face files.
//!
//! The flow:
//! 1. **Load.** [`Tokenizer::from_gguf`] (in the `gguf` module) rebuilds the tokenizer that
//!    llama.cpp describes in GGUF metadata (vocabulary, merges, token types, special ids,
//!    pre-tokenizer name);
//!    [`Tokenizer::from_files`] loads a Hugging Face `tokenizer.json` plus the optional
//!    `tokenizer_config.json` (special tokens, `add_bos_token`, chat template) and the sibling
//!    `config.json`, `generation_config.json` and `chat_template.jinja` when present. Both end
//!    in the same [`tokenizers`] pipeline: added-token matching → normalizer →
//!    pre-tokenizer → model (BPE) → decoder.
//! 2. **Encode.** [`Tokenizer::encode`] finds special tokens written in the text (e.g.
//!    `<|im_start|>`) and maps them to their ids, as Hugging Face does, then splits and merges
//!    the rest; with `add_special_tokens` it adds BOS/EOS as the model's files ask.
//! 3. **Decode.** [`Tokenizer::decode`] maps ids back to text; for incremental output while
//!    generating, use [`crate::StreamingDetokenizer`].
//!
//! A `Tokenizer` is cheap to clone (the data is shared) and can be sent between threads.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde_json::Value as Json;
use tokenizers::DecoderWrapper;

use crate::TextError;

/// A tokenizer: see the [module documentation](self).
#[derive(Clone)]
pub struct Tokenizer {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) tk: tokenizers::Tokenizer,
    pub(crate) bos: Option<(String, u32)>,
    pub(crate) eos: Option<String>,
    pub(crate) eos_ids: Vec<u32>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    /// Whether BOS/EOS are added here rather than by `tk`'s post-processor.
    pub(crate) manual_specials: bool,
    pub(crate) chat_template: Option<String>,
    /// Whether the decoder is plain byte-level (enables the streaming fast path).
    pub(crate) byte_level: bool,
    pub(crate) vocab_size: usize,
}

/// What a loader hands to [`Tokenizer::assemble`].
pub(crate) struct Parts {
    pub tk: tokenizers::Tokenizer,
    pub bos_id: Option<u32>,
    /// The primary EOS first, then other end-of-generation ids.
    pub eos_ids: Vec<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub manual_specials: bool,
    pub chat_template: Option<String>,
    /// Number of ids, when the loader knows it; otherwise computed from the vocabulary.
    pub vocab_size: Option<usize>,
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`, with `tokenizer_config.json` if given.
    ///
    /// Also reads, when they sit next to `tokenizer.json`: `chat_template.jinja` (which takes
    /// precedence over the config's `chat_template`), and `config.json` /
    /// `generation_config.json` for extra end-of-sequence ids.
    pub fn from_files(
        tokenizer_json: &Path,
        tokenizer_config_json: Option<&Path>,
    ) -> Result<Tokenizer, TextError> {
        let text = read(tokenizer_json)?;
        let mut tk =
            tokenizers::Tokenizer::from_str(&text).map_err(|e| TextError::TokenizerJson {
                path: tokenizer_json.to_path_buf(),
                message: e.to_string(),
            })?;
        tk.with_padding(None);
        tk.with_truncation(None)
            .map_err(|e| TextError::TokenizerJson {
                path: tokenizer_json.to_path_buf(),
                message: e.to_string(),
            })?;

        let config = tokenizer_config_json.map(read_json).transpose()?;
        let config = config.as_ref().unwrap_or(&Json::Null);
        let dir = tokenizer_json.parent().unwrap_or(Path::new("."));
        let sibling = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        let model_config = sibling("config.json").map(|p| read_json(&p)).transpose()?;
        let gen_config = sibling("generation_config.json")
            .map(|p| read_json(&p))
            .transpose()?;
        let jinja = sibling("chat_template.jinja")
            .map(|p| read(&p))
            .transpose()?;

        let configs = [gen_config.as_ref(), model_config.as_ref()];
        let id_of = |name: &str| {
            config
                .get(name)
                .and_then(token_content)
                .and_then(|t| tk.token_to_id(&t))
        };
        let bos_id = id_of("bos_token").or_else(|| {
            configs
                .iter()
                .flatten()
                .find_map(|c| ids_field(c, "bos_token_id").into_iter().next())
        });
        let mut eos_ids: Vec<u32> = id_of("eos_token").into_iter().collect();
        for c in configs.iter().flatten() {
            for id in ids_field(c, "eos_token_id") {
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }

        let flag = |name: &str| config.get(name).and_then(Json::as_bool);
        let explicit = flag("add_bos_token").is_some() || flag("add_eos_token").is_some();
        let manual_specials = explicit || tk.get_post_processor().is_none();
        let (add_bos, add_eos) = if manual_specials {
            (
                flag("add_bos_token").unwrap_or(false),
                flag("add_eos_token").unwrap_or(false),
            )
        } else {
            // The post-processor decides; find out what it adds around an empty text.
            let probe = tk
                .encode_fast("", true)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default();
            (
                bos_id.is_some() && probe.first() == bos_id.as_ref(),
                !eos_ids.is_empty() && probe.last() == eos_ids.first(),
            )
        };

        let chat_template = jinja.or_else(|| config.get("chat_template").and_then(pick_template));
        Ok(Tokenizer::assemble(Parts {
            tk,
            bos_id,
            eos_ids,
            add_bos,
            add_eos,
            manual_specials,
            chat_template,
            vocab_size: None,
        }))
    }

    pub(crate) fn assemble(p: Parts) -> Tokenizer {
        let tk = p.tk;
        let bos = p.bos_id.and_then(|id| tk.id_to_token(id).map(|t| (t, id)));
        let eos = p.eos_ids.first().and_then(|&id| tk.id_to_token(id));
        let byte_level = matches!(tk.get_decoder(), Some(DecoderWrapper::ByteLevel(_)));
        let added_max = tk
            .get_added_vocabulary()
            .get_added_tokens_decoder()
            .keys()
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0);
        let vocab_size = p
            .vocab_size
            .unwrap_or_else(|| {
                let vocab = tk.get_vocab(false);
                vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0)
            })
            .max(added_max);
        Tokenizer {
            inner: Arc::new(Inner {
                tk,
                bos,
                eos,
                eos_ids: p.eos_ids,
                add_bos: p.add_bos,
                add_eos: p.add_eos,
                manual_specials: p.manual_specials,
                chat_template: p.chat_template,
                byte_level,
                vocab_size,
            }),
        }
    }

    /// Token ids for `text`. Special tokens written in the text (e.g. `<|im_start|>`) become
    /// their ids. With `add_special_tokens`, BOS/EOS are added as the model's files ask.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TextError> {
        let i = &self.inner;
        let by_library = add_special_tokens && !i.manual_specials;
        let encoding =
            i.tk.encode_fast(text, by_library)
                .map_err(|e| TextError::Encode {
                    message: e.to_string(),
                })?;
        let body = encoding.get_ids();
        if !(add_special_tokens && i.manual_specials) {
            return Ok(body.to_vec());
        }
        let mut ids = Vec::with_capacity(body.len() + 2);
        if let (true, Some((_, bos))) = (i.add_bos, &i.bos) {
            ids.push(*bos);
        }
        ids.extend_from_slice(body);
        if let (true, Some(&eos)) = (i.add_eos, i.eos_ids.first()) {
            ids.push(eos);
        }
        Ok(ids)
    }

    /// The text for `ids`. Ids outside the vocabulary are skipped (as Hugging Face does);
    /// with `skip_special_tokens`, special tokens are left out.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TextError> {
        self.inner
            .tk
            .decode(ids, skip_special_tokens)
            .map_err(|e| TextError::Decode {
                message: e.to_string(),
            })
    }

    /// The beginning-of-sequence token id, if the model has one.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.inner.bos.as_ref().map(|(_, id)| *id)
    }

    /// The beginning-of-sequence token, e.g. `<s>`.
    pub fn bos_token(&self) -> Option<&str> {
        self.inner.bos.as_ref().map(|(t, _)| t.as_str())
    }

    /// Ids that end generation: the EOS token first, then any others the model's files name
    /// (e.g. end-of-turn). May be empty.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.inner.eos_ids
    }

    /// The end-of-sequence token, e.g. `<|im_end|>`.
    pub fn eos_token(&self) -> Option<&str> {
        self.inner.eos.as_deref()
    }

    /// Whether `encode(.., true)` puts the BOS token first.
    pub fn add_bos_token(&self) -> bool {
        self.inner.add_bos && self.inner.bos.is_some()
    }

    /// The id of `token` (a vocabulary entry as stored, e.g. `Ġthe` in byte-level BPE).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.tk.token_to_id(token)
    }

    /// The vocabulary entry for `id`, as stored.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.tk.id_to_token(id)
    }

    /// Whether `id` is a special token (dropped by `skip_special_tokens`).
    pub fn is_special(&self, id: u32) -> bool {
        let added = self.inner.tk.get_added_vocabulary();
        added
            .simple_id_to_token(id)
            .is_some_and(|t| added.is_special_token(&t))
    }

    /// Number of token ids, including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.vocab_size
    }

    /// The model's default chat template (Jinja source), if it ships one.
    pub fn chat_template(&self) -> Option<&str> {
        self.inner.chat_template.as_deref()
    }
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.inner.bos)
            .field("eos_ids", &self.inner.eos_ids)
            .field("add_bos", &self.inner.add_bos)
            .field("has_chat_template", &self.inner.chat_template.is_some())
            .finish()
    }
}

fn read(path: &Path) -> Result<String, TextError> {
    std::fs::read_to_string(path).map_err(|source| TextError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json(path: &Path) -> Result<Json, TextError> {
    let text = read(path)?;
    serde_json::from_str(&text).map_err(|source| TextError::Json {
        path: PathBuf::from(path),
        source,
    })
}

/// A special token in tokenizer_config.json: a string, or an object with `content`.
fn token_content(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
        _ => None,
    }
}

/// An id field that may be a number or a list of numbers.
fn ids_field(config: &Json, key: &str) -> Vec<u32> {
    let as_id = |v: &Json| v.as_u64().and_then(|n| u32::try_from(n).ok());
    match config.get(key) {
        Some(Json::Array(a)) => {
            let mut seen = HashSet::new();
            a.iter()
                .filter_map(as_id)
                .filter(|id| seen.insert(*id))
                .collect()
        }
        Some(v) => as_id(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// `chat_template` is a string, or a list of `{name, template}` of which "default" is used
/// (the first one if none is called that).
fn pick_template(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Array(list) => {
            let template = |e: &Json| e.get("template").and_then(Json::as_str).map(str::to_string);
            list.iter()
                .find(|e| e.get("name").and_then(Json::as_str) == Some("default"))
                .and_then(template)
                .or_else(|| list.iter().find_map(template))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
