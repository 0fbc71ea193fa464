//! The chat-cache benchmark: with a long conversation history, the time to first token of a
//! cold turn (the whole history prefilled) against a warm one (only the new message), and the
//! cost of saving the conversation with its cache and of reopening it.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::chat::{prompt_tokens, ChatOptions, ChatSession};
use crate::error::Result;
use crate::generate::GenerateParams;
use crate::load::LoadedModel;
use crate::ChatMessage;

/// What [`bench_warm_cold`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct ChatBench {
    pub history_tokens: usize,
    pub cold_ttft: f64,
    pub cold_prefilled: usize,
    pub warm_ttft: f64,
    pub warm_prefilled: usize,
    pub warm_reused: usize,
    /// Bytes of the conversation's cache in memory after the warm turn.
    pub cache_bytes: u64,
    pub save_seconds: f64,
    pub file_bytes: u64,
    pub restore_seconds: f64,
    pub restored_ttft: f64,
    pub restored_prefilled: usize,
}

const TURN: &str = "Tell me something about rivers, mountains and the weather in spring, \
and how farmers plan their fields when the snow melts early in the valleys.";

/// Runs the benchmark with a history of at least `history_tokens` tokens, the cache kept in
/// `kv_bits` bits when given; the saved file goes into `dir`.
pub fn bench_warm_cold(
    lm: &LoadedModel,
    history_tokens: usize,
    kv_bits: Option<i32>,
    dir: &Path,
) -> Result<ChatBench> {
    let mut messages = vec![ChatMessage::new("system", "You are a helpful assistant.")];
    while prompt_tokens(lm, &messages)?.len() < history_tokens {
        messages.push(ChatMessage::new("user", TURN));
        messages.push(ChatMessage::new("assistant", TURN));
    }
    let history = prompt_tokens(lm, &messages)?.len();
    let params = GenerateParams {
        max_tokens: 8,
        ..GenerateParams::default()
    };
    let options = ChatOptions {
        kv_bits,
        ..ChatOptions::default()
    };
    let mut session = ChatSession::with_messages(lm, messages, options)?;
    let mut quiet = |_: &str| true;
    let cold = session.respond(lm, "Answer in one word: rivers?", &params, &mut quiet, None)?;
    let warm = session.respond(lm, "And mountains?", &params, &mut quiet, None)?;

    let path = dir.join("chat-bench.safetensors");
    let started = Instant::now();
    let file_bytes = session.save(lm, &path)?;
    let save_seconds = started.elapsed().as_secs_f64();
    drop(session);
    let started = Instant::now();
    let mut reopened = ChatSession::open(lm, &path)?;
    reopened.cache.eval()?;
    let restore_seconds = started.elapsed().as_secs_f64();
    let restored = reopened.respond(lm, "And the weather?", &params, &mut quiet, None)?;
    let _ = std::fs::remove_file(&path);
    Ok(ChatBench {
        history_tokens: history,
        cold_ttft: cold.stats.time_to_first_token,
        cold_prefilled: cold.stats.prefilled_tokens,
        warm_ttft: warm.stats.time_to_first_token,
        warm_prefilled: warm.stats.prefilled_tokens,
        warm_reused: warm.stats.reused_tokens,
        cache_bytes: warm.stats.cache_bytes,
        save_seconds,
        file_bytes,
        restore_seconds,
        restored_ttft: restored.stats.time_to_first_token,
        restored_prefilled: restored.stats.prefilled_tokens,
    })
}
