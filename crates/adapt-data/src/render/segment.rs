//! What rendering takes and gives: [`RenderOptions`] (how examples become tokens),
//! [`Segment`]s of rendered text that are trained or not, and [`Tokenized`] ids with their
//! loss mask.

use serde::{Deserialize, Serialize};

/// How examples become tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderOptions {
    /// Train only on assistant turns / completions (on), or on every token (off).
    pub mask_prompt: bool,
    /// Render completions as a user / assistant chat with the model's template (when it has
    /// one); otherwise prompt and completion are concatenated.
    pub completions_as_chat: bool,
}

impl Default for RenderOptions {
    fn default() -> RenderOptions {
        RenderOptions {
            mask_prompt: true,
            completions_as_chat: true,
        }
    }
}

/// A piece of rendered text, trained or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The text.
    pub text: String,
    /// Whether the loss covers it.
    pub trained: bool,
}

/// Token ids and, for each, whether the loss covers it: `mask[j]` says whether predicting
/// `tokens[j]` from the tokens before it counts (so a leading BOS is never trained).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokenized {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// `true` where the token is trained.
    pub mask: Vec<bool>,
}

/// A segment of `text`.
pub(super) fn seg(text: &str, trained: bool) -> Segment {
    Segment {
        text: text.to_string(),
        trained,
    }
}
