//! Rendering and tokenization with loss masks.
//!
//! A chat is rendered with the model's chat template, then split into segments that are
//! trained or not. Every assistant turn is located by rendering prefixes of the conversation:
//! the turn starts where `messages[..i]` rendered with the generation prompt ends, and ends
//! where `messages[..=i]` rendered without it ends (trailing whitespace excluded, so the
//! template's end-of-turn token is trained and the newline after it is not). When a template
//! does not render prefixes as prefixes, the turn's content is searched for after the
//! previous turn instead; failing both, the example is refused with `data.mask_alignment`.
//! Segments are tokenized one by one, so mask boundaries fall exactly on token boundaries and
//! the prompt before each reply is tokenized as generation tokenizes it (on its own, ending
//! with the template's assistant cue): the trained tokens are the ones the model would
//! generate, never a BPE merge across the prompt / reply boundary.
//!
//! [`TextModel`] composes the parts: `segment` (the options and results), `chat` (template
//! rendering into segments), `frame` (the completion frame with slots), `memo` (short texts
//! tokenized once) and `splice` (that
//! frame pre-tokenized around its special tokens).

use std::path::Path;

use adapt_text::{ChatTemplate, Tokenizer};
use sha2::{Digest, Sha256};

use crate::error::{At, DataError};
use crate::example::Example;

mod chat;
mod frame;
mod memo;
mod segment;
mod splice;

use chat::{chat_segments, plain_chat};
use frame::{completion_frame, completion_messages, fill, has_slot_marks};
use segment::seg;
pub use segment::{RenderOptions, Segment, Tokenized};
use splice::{Splice, SPLICE_PROBES};

/// A model's tokenizer and chat template, with an identity for cache keys.
pub struct TextModel {
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    fingerprint: String,
    /// The chat rendering of a completion with placeholders, when the template treats
    /// message contents as opaque text (checked at load): a completion then needs no template
    /// run, only two substitutions.
    completion_frame: Option<Vec<Segment>>,
    /// The completion frame pre-tokenized around its special tokens (see [`Splice`]), when
    /// that reproduces whole-segment tokenization on the probes checked at load.
    splice: Option<Splice>,
}

impl std::fmt::Debug for TextModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextModel")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl TextModel {
    /// Tokenizer and chat template from a GGUF model file's metadata.
    pub fn from_gguf(path: &Path) -> Result<TextModel, DataError> {
        let gguf = adapt_gguf::GgufFile::open(path)?;
        TextModel::new(Tokenizer::from_gguf(&gguf)?)
    }

    /// Tokenizer and chat template of a Hugging Face / mlx-lm model folder (`tokenizer.json`,
    /// `tokenizer_config.json`, `chat_template.jinja`).
    pub fn from_folder(dir: &Path) -> Result<TextModel, DataError> {
        let config = dir.join("tokenizer_config.json");
        let config = config.is_file().then_some(config);
        TextModel::new(Tokenizer::from_files(
            &dir.join("tokenizer.json"),
            config.as_deref(),
        )?)
    }

    /// Tokenizer and chat template of the model at `path`: a GGUF file or a model folder.
    pub fn from_model(path: &Path) -> Result<TextModel, DataError> {
        if path.is_dir() {
            TextModel::from_folder(path)
        } else {
            TextModel::from_gguf(path)
        }
    }

    /// Wraps `tokenizer`; its own chat template (if any) is used.
    pub fn new(tokenizer: Tokenizer) -> Result<TextModel, DataError> {
        let source = tokenizer.chat_template().map(str::to_string);
        TextModel::with_template(tokenizer, source.as_deref())
    }

    /// Wraps `tokenizer` with the chat template `source` (`None`: no template).
    pub fn with_template(
        tokenizer: Tokenizer,
        source: Option<&str>,
    ) -> Result<TextModel, DataError> {
        let template = source
            .map(|s| ChatTemplate::new(s, tokenizer.bos_token(), tokenizer.eos_token()))
            .transpose()?;
        let mut h = Sha256::new();
        h.update(b"adapt-data tokenizer v1\0");
        for id in 0..tokenizer.vocab_size() as u32 {
            h.update(tokenizer.id_to_token(id).unwrap_or_default().as_bytes());
            h.update([0, u8::from(tokenizer.is_special(id))]);
        }
        h.update(format!(
            "{:?}{:?}{}",
            tokenizer.bos_token_id(),
            tokenizer.eos_token_ids(),
            tokenizer.add_bos_token()
        ));
        h.update(b"\0template\0");
        h.update(source.unwrap_or("\u{0}none").as_bytes());
        let completion_frame = template.as_ref().and_then(completion_frame);
        let mut model = TextModel {
            tokenizer,
            template,
            fingerprint: hex(&h.finalize()),
            completion_frame,
            splice: None,
        };
        model.splice = model
            .completion_frame
            .as_deref()
            .and_then(|frame| Splice::new(&model.tokenizer, frame))
            .filter(|splice| model.splice_matches(splice));
        Ok(model)
    }

    /// Whether `splice` gives the ids and mask of [`TextModel::tokenize_unspliced`] on every
    /// probe pair it accepts, with the prompt masked and not.
    fn splice_matches(&self, splice: &Splice) -> bool {
        let at = At::new("", 0);
        for (p, c) in SPLICE_PROBES {
            if !(splice.accepts(p) && splice.accepts(c)) {
                continue;
            }
            let example = Example::Completion {
                prompt: (*p).to_string(),
                completion: (*c).to_string(),
            };
            for mask_prompt in [true, false] {
                let opts = RenderOptions {
                    mask_prompt,
                    completions_as_chat: true,
                };
                let Ok(plain) = self.tokenize_unspliced(&example, &opts, &at) else {
                    return false;
                };
                let Ok(mut fast) = splice.tokenize(&self.tokenizer, p, c, &opts, &at) else {
                    return false;
                };
                self.end_with_eos(&mut fast, true);
                if fast != plain {
                    return false;
                }
            }
        }
        true
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Whether a chat template is present.
    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// Whether completions rendered through the chat template take the spliced path of
    /// [`TextModel::tokenize`] (verified at load).
    pub fn splices_completions(&self) -> bool {
        self.splice.is_some()
    }

    /// A hash of the vocabulary, special tokens and chat template.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The rendered example, split into trained and untrained text.
    pub fn segments(
        &self,
        example: &Example,
        opts: &RenderOptions,
        at: &At,
    ) -> Result<Vec<Segment>, DataError> {
        let segments = match (example, &self.template) {
            (Example::Chat { messages, tools }, Some(t)) => {
                chat_segments(t, messages, tools.as_ref(), at)?
            }
            (Example::Chat { messages, .. }, None) => plain_chat(messages),
            (Example::Completion { prompt, completion }, Some(t)) if opts.completions_as_chat => {
                match &self.completion_frame {
                    Some(frame) if !has_slot_marks(prompt) && !has_slot_marks(completion) => {
                        fill(frame, prompt, completion)
                    }
                    _ => chat_segments(t, &completion_messages(prompt, completion), None, at)?,
                }
            }
            (Example::Completion { prompt, completion }, _) => {
                vec![seg(prompt, false), seg(completion, true)]
            }
            (Example::Text { text }, _) => vec![seg(text, true)],
        };
        Ok(segments
            .into_iter()
            .filter(|s| !s.text.is_empty())
            .map(|s| Segment {
                trained: s.trained || !opts.mask_prompt,
                text: s.text,
            })
            .collect())
    }

    /// Token ids and mask for `example`.
    ///
    /// A completion rendered through the chat template's frame takes a faster path that
    /// tokenizes only the text between special tokens that holds the prompt or completion
    /// and splices in the frame's other ids, computed once (see [`Splice`]); the result is
    /// the same as [`TextModel::tokenize_unspliced`]'s.
    pub fn tokenize(
        &self,
        example: &Example,
        opts: &RenderOptions,
        at: &At,
    ) -> Result<Tokenized, DataError> {
        if let (Example::Completion { prompt, completion }, Some(splice), true) =
            (example, &self.splice, opts.completions_as_chat)
        {
            if splice.accepts(prompt) && splice.accepts(completion) {
                let mut out = splice.tokenize(&self.tokenizer, prompt, completion, opts, at)?;
                self.end_with_eos(&mut out, true);
                return Ok(out);
            }
        }
        self.tokenize_unspliced(example, opts, at)
    }

    /// Token ids and mask for `example`, each rendered segment tokenized whole: the reference
    /// that [`TextModel::tokenize`]'s spliced path must match.
    pub fn tokenize_unspliced(
        &self,
        example: &Example,
        opts: &RenderOptions,
        at: &At,
    ) -> Result<Tokenized, DataError> {
        let segments = self.segments(example, opts, at)?;
        // Chats are tokenized as transformers' apply_chat_template does (the template writes
        // any BOS itself); completions without a template and texts get the model's BOS.
        let chat = matches!(example, Example::Chat { .. })
            || (matches!(example, Example::Completion { .. })
                && opts.completions_as_chat
                && self.template.is_some());
        let mut out = Tokenized::default();
        if let (false, true, Some(bos)) = (
            chat,
            self.tokenizer.add_bos_token(),
            self.tokenizer.bos_token_id(),
        ) {
            out.tokens.push(bos);
            out.mask.push(false);
        }
        for s in &segments {
            let ids = self
                .tokenizer
                .encode(&s.text, false)
                .map_err(|e| DataError::Tokenize {
                    at: at.clone(),
                    message: e.to_string(),
                })?;
            out.mask.extend(std::iter::repeat_n(s.trained, ids.len()));
            out.tokens.extend(ids);
        }
        self.end_with_eos(&mut out, chat);
        Ok(out)
    }

    /// Ends `out` with EOS unless the template already ended the last trained turn with it.
    fn end_with_eos(&self, out: &mut Tokenized, chat: bool) {
        // End with EOS unless the template already ended the last trained turn with it.
        let eos = self.tokenizer.eos_token_ids();
        if let Some(&first) = eos.first() {
            let last_trained = out.mask.iter().rposition(|&m| m);
            let ended = match last_trained {
                Some(end) => {
                    let start = out.mask[..end]
                        .iter()
                        .rposition(|&m| !m)
                        .map_or(0, |i| i + 1);
                    out.tokens[start..=end].iter().any(|t| eos.contains(t))
                }
                None => out.tokens.last().is_some_and(|t| eos.contains(t)),
            };
            if !ended && (!chat || last_trained.is_some()) {
                match last_trained {
                    Some(end) if chat => {
                        out.tokens.insert(end + 1, first);
                        out.mask.insert(end + 1, true);
                    }
                    _ => {
                        out.tokens.push(first);
                        out.mask.push(true);
                    }
                }
            }
        }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
