//! The completion frame spliced around its special tokens: the tokenizer splits text at special
//! tokens first and tokenizes each run between them on its own, so a rendered completion's ids
//! are the ids of its runs joined. Runs without the prompt or completion are tokenized once at
//! load; per example only the runs holding its text are. The text model keeps a splice only
//! when it reproduces the plain path exactly on [`SPLICE_PROBES`].

use adapt_text::Tokenizer;

use super::frame::{COMPLETION_SLOT, PROMPT_SLOT};
use super::memo::EncodeMemo;
use super::segment::{RenderOptions, Segment, Tokenized};
use crate::error::{At, DataError};

/// Which example text fills a slot of the completion frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Prompt,
    Completion,
}

/// Literal text or a slot, within a run of the frame between special tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot(Fill),
}

/// A run of a frame segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Ids known at load: a special token, or a run between special tokens without a slot.
    Ids(Vec<u32>),
    /// A run between special tokens that holds a slot, tokenized for each example.
    Run(Vec<Piece>),
}

/// The completion frame split at its special tokens, with every run that holds no slot
/// tokenized once.
///
/// A tokenizer first splits text at the special tokens written in it, then normalizes,
/// pre-tokenizes and merges each run between them on its own. So a segment's ids are the
/// concatenation of its runs' ids, and only the runs holding the prompt or the completion
/// (ChatML: `user\n{prompt}` and `{completion}`) need the tokenizer per example, not the
/// system prompt and role headers. That reasoning needs the filled-in text to leave the
/// special-token matches alone: examples whose prompt or completion contains a character
/// that starts a special token (or a slot mark) take the unspliced path, and the splice is
/// kept only if it reproduces whole-segment tokenization on probe texts at load (which
/// catches, e.g., special tokens that strip the whitespace beside them).
#[derive(Debug)]
pub(super) struct Splice {
    /// The frame's segments (trained or not) as runs.
    segments: Vec<(Vec<Part>, bool)>,
    /// First characters of the special tokens.
    starts: Vec<char>,
    /// The runs tokenized so far (example texts repeat in tabular data).
    memo: EncodeMemo,
}

/// Probe (prompt, completion) pairs on which the splice must match whole-segment tokenization.
pub(super) const SPLICE_PROBES: &[(&str, &str)] = &[
    ("Hi", "Hello!"),
    ("", ""),
    (" ", " "),
    ("  padded\n", "\n{{ x }} <b>&</b>  "),
    ("\n\nleading newlines", "trailing newlines\n\n"),
    ("\t tab and space \t", " \r\n crlf \r\n"),
    ("digits 1234567890 and 3.14", "42"),
    ("emoji 😀🎉 and ünïcödé 日本語", "👍"),
    ("'s 're 'll contractions", "don't"),
    ("yes", "no"),
    ("Passenger: 1st class, adult, man. Did they survive?", "yes"),
];

impl Splice {
    /// The splice of `frame`, or `None` when a special token starts with a slot mark's
    /// character or a run cannot be tokenized.
    pub(super) fn new(tk: &Tokenizer, frame: &[Segment]) -> Option<Splice> {
        let mut specials: Vec<(String, u32)> = (0..tk.vocab_size() as u32)
            .filter(|&id| tk.is_special(id))
            .filter_map(|id| tk.id_to_token(id).map(|t| (t, id)))
            .filter(|(t, _)| !t.is_empty())
            .collect();
        // Longest first, so the first match at a position is the longest one.
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let mut starts: Vec<char> = specials
            .iter()
            .filter_map(|(t, _)| t.chars().next())
            .collect();
        starts.sort_unstable();
        starts.dedup();
        if starts.contains(&'\u{E000}') {
            return None;
        }
        let mut segments = Vec::new();
        for seg in frame {
            let mut parts = Vec::new();
            let mut run = String::new();
            let mut rest = seg.text.as_str();
            while !rest.is_empty() {
                match specials.iter().find(|(t, _)| rest.starts_with(t.as_str())) {
                    Some((t, id)) => {
                        parts.push(Splice::run(tk, &std::mem::take(&mut run))?);
                        parts.push(Part::Ids(vec![*id]));
                        rest = &rest[t.len()..];
                    }
                    None => {
                        let c = rest.chars().next()?;
                        run.push(c);
                        rest = &rest[c.len_utf8()..];
                    }
                }
            }
            parts.push(Splice::run(tk, &run)?);
            parts.retain(|p| !matches!(p, Part::Ids(ids) if ids.is_empty()));
            segments.push((parts, seg.trained));
        }
        Some(Splice {
            segments,
            starts,
            memo: EncodeMemo::default(),
        })
    }

    /// A run of frame text between special tokens: its ids, or its pieces if it holds a slot.
    fn run(tk: &Tokenizer, text: &str) -> Option<Part> {
        if !text.contains(PROMPT_SLOT) && !text.contains(COMPLETION_SLOT) {
            if text.is_empty() {
                return Some(Part::Ids(Vec::new()));
            }
            return tk.encode(text, false).ok().map(Part::Ids);
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        loop {
            let next = [
                (PROMPT_SLOT, Fill::Prompt),
                (COMPLETION_SLOT, Fill::Completion),
            ]
            .into_iter()
            .filter_map(|(slot, fill)| rest.find(slot).map(|k| (k, slot, fill)))
            .min_by_key(|&(k, _, _)| k);
            let Some((k, slot, fill)) = next else { break };
            if k > 0 {
                pieces.push(Piece::Text(rest[..k].to_string()));
            }
            pieces.push(Piece::Slot(fill));
            rest = &rest[k + slot.len()..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Some(Part::Run(pieces))
    }

    /// Whether an example text can be spliced in.
    pub(super) fn accepts(&self, text: &str) -> bool {
        !text.contains(|c: char| c == '\u{E000}' || self.starts.binary_search(&c).is_ok())
    }

    /// The ids and mask of the filled frame (before any EOS is added).
    pub(super) fn tokenize(
        &self,
        tk: &Tokenizer,
        prompt: &str,
        completion: &str,
        opts: &RenderOptions,
        at: &At,
    ) -> Result<Tokenized, DataError> {
        let mut out = Tokenized::default();
        let mut text = String::new();
        for (parts, trained) in &self.segments {
            let trained = *trained || !opts.mask_prompt;
            for part in parts {
                let ids = match part {
                    Part::Ids(ids) => ids.as_slice(),
                    Part::Run(pieces) => {
                        text.clear();
                        for piece in pieces {
                            text.push_str(match piece {
                                Piece::Text(t) => t,
                                Piece::Slot(Fill::Prompt) => prompt,
                                Piece::Slot(Fill::Completion) => completion,
                            });
                        }
                        if text.is_empty() {
                            continue;
                        }
                        let ids = self
                            .memo
                            .encode(tk, &text)
                            .map_err(|e| DataError::Tokenize {
                                at: at.clone(),
                                message: e.to_string(),
                            })?;
                        out.mask.extend(std::iter::repeat_n(trained, ids.len()));
                        out.tokens.extend_from_slice(&ids);
                        continue;
                    }
                };
                out.mask.extend(std::iter::repeat_n(trained, ids.len()));
                out.tokens.extend_from_slice(ids);
            }
        }
        Ok(out)
    }
}
