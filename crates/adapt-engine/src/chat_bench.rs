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

/// What [`bench_warm_cold`] measured: each time and size the median of its samples.
#[derive(Debug, Clone, Serialize)]
pub struct ChatBench {
    pub history_tokens: usize,
    /// Measured samples (after one warm-up that is not counted).
    pub samples: usize,
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
/// `kv_bits` bits when given; the saved file goes into `dir`. One warm-up pass (the same
/// turns, not counted) runs first, so the cold turn is not also the first the model ever
/// runs; then `samples` passes (at least 3), each from a new conversation, whose medians are
/// reported.
pub fn bench_warm_cold(
    lm: &LoadedModel,
    history_tokens: usize,
    kv_bits: Option<i32>,
    dir: &Path,
    samples: usize,
) -> Result<ChatBench> {
    let mut messages = vec![ChatMessage::new("system", "You are a helpful assistant.")];
    while prompt_tokens(lm, &messages)?.len() < history_tokens {
        messages.push(ChatMessage::new("user", TURN));
        messages.push(ChatMessage::new("assistant", TURN));
    }
    let history = prompt_tokens(lm, &messages)?.len();
    let samples = samples.max(3);
    sample(lm, &messages, kv_bits, dir)?;
    let measured = (0..samples)
        .map(|_| sample(lm, &messages, kv_bits, dir))
        .collect::<Result<Vec<ChatBench>>>()?;
    let time = |f: fn(&ChatBench) -> f64| median(measured.iter().map(f).collect());
    let count = |f: fn(&ChatBench) -> usize| {
        median(measured.iter().map(|b| f(b) as f64).collect()) as usize
    };
    let bytes =
        |f: fn(&ChatBench) -> u64| median(measured.iter().map(|b| f(b) as f64).collect()) as u64;
    Ok(ChatBench {
        history_tokens: history,
        samples,
        cold_ttft: time(|b| b.cold_ttft),
        cold_prefilled: count(|b| b.cold_prefilled),
        warm_ttft: time(|b| b.warm_ttft),
        warm_prefilled: count(|b| b.warm_prefilled),
        warm_reused: count(|b| b.warm_reused),
        cache_bytes: bytes(|b| b.cache_bytes),
        save_seconds: time(|b| b.save_seconds),
        file_bytes: bytes(|b| b.file_bytes),
        restore_seconds: time(|b| b.restore_seconds),
        restored_ttft: time(|b| b.restored_ttft),
        restored_prefilled: count(|b| b.restored_prefilled),
    })
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One pass: a cold turn over the history, a warm one, save, reopen and a turn after it.
fn sample(
    lm: &LoadedModel,
    messages: &[ChatMessage],
    kv_bits: Option<i32>,
    dir: &Path,
) -> Result<ChatBench> {
    let params = GenerateParams {
        max_tokens: 8,
        ..GenerateParams::default()
    };
    let options = ChatOptions {
        kv_bits,
        ..ChatOptions::default()
    };
    let mut session = ChatSession::with_messages(lm, messages.to_vec(), options)?;
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
        history_tokens: cold.stats.prompt_tokens,
        samples: 1,
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

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![9.0, 0.5, 0.7, 100.0, 0.6]), 0.7);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
