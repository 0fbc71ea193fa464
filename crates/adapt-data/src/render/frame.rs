//! The completion frame: a template's rendering of a user / assistant chat with slot marks
//! in place of the prompt and the completion. When filling the slots reproduces real
//! renderings exactly, a completion needs no template run, only two substitutions.

use adapt_text::ChatTemplate;
use serde_json::{json, Value};

use super::chat::chat_segments;
use super::segment::Segment;
use crate::error::At;

/// The marks the frame holds in place of the prompt and the completion (private-use
/// characters, so no real text is mistaken for them).
pub(super) const PROMPT_SLOT: &str = "\u{E000}prompt\u{E001}";
pub(super) const COMPLETION_SLOT: &str = "\u{E000}completion\u{E001}";

/// A completion as the user / assistant chat the template renders.
pub(super) fn completion_messages(prompt: &str, completion: &str) -> [Value; 2] {
    [
        json!({"role": "user", "content": prompt}),
        json!({"role": "assistant", "content": completion}),
    ]
}

/// The frame with its slots filled.
pub(super) fn fill(frame: &[Segment], prompt: &str, completion: &str) -> Vec<Segment> {
    frame
        .iter()
        .map(|s| Segment {
            text: s
                .text
                .replace(PROMPT_SLOT, prompt)
                .replace(COMPLETION_SLOT, completion),
            trained: s.trained,
        })
        .collect()
}

/// The placeholder frame of `template`, if filling it reproduces real renderings exactly.
pub(super) fn completion_frame(template: &ChatTemplate) -> Option<Vec<Segment>> {
    let at = At::new("", 0);
    let frame = chat_segments(
        template,
        &completion_messages(PROMPT_SLOT, COMPLETION_SLOT),
        None,
        &at,
    )
    .ok()?;
    let slots = |slot: &str| {
        frame
            .iter()
            .map(|s| s.text.matches(slot).count())
            .sum::<usize>()
    };
    if slots(PROMPT_SLOT) != 1 || slots(COMPLETION_SLOT) != 1 {
        return None;
    }
    let samples = [
        ("Hi", "Hello!"),
        ("  padded\n", "\n{{ x }} <b>&</b>  "),
        ("a", "b\nc"),
    ];
    for (p, c) in samples {
        let real = chat_segments(template, &completion_messages(p, c), None, &at).ok()?;
        if real != fill(&frame, p, c) {
            return None;
        }
    }
    Some(frame)
}

/// Whether `text` holds the character that starts a slot mark (such texts cannot fill the
/// frame).
pub(super) fn has_slot_marks(text: &str) -> bool {
    text.contains('\u{E000}')
}
