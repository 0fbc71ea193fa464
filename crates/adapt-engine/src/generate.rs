//! Token generation as a stream.
//!
//! [`generate`] takes a prompt's token ids and a [`SequenceCache`] (the KV caches of one
//! sequence plus the tokens they hold). It reuses the longest cached prefix of the prompt,
//! prefills the rest in chunks, then decodes one token per step: sample → detokenize → hold
//! back text that might start a stop string → hand finished text to a [`TokenSink`]. It stops
//! on an end-of-sequence token, a stop string, `max_tokens`, the context length, or when the
//! sink asks to. The cache then holds exactly the tokens the model has seen, so the next call
//! (the next chat turn) prefills only what is new.

use std::time::Instant;

use adapt_text::{StreamingDetokenizer, Tokenizer};
use mlx_rs::ops::indexing::argmax_axis;
use mlx_rs::{Array, Dtype};
use serde::{Deserialize, Serialize};

use crate::cache::KvCache;
use crate::error::{EngineError, Result};
use crate::models::Model;
use crate::sample::{Sampler, SamplingParams};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct GenerateParams {
    /// Most tokens to generate.
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation ends before any of these strings; they are not part of the output.
    pub stop: Vec<String>,
    /// Prompt tokens processed per forward pass while prefilling.
    pub prefill_chunk: usize,
    /// Keep going past end-of-sequence tokens (benchmarks generate a fixed count).
    pub ignore_eos: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 512,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            prefill_chunk: 2048,
            ignore_eos: false,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfSequence,
    StopString,
    MaxTokens,
    ContextFull,
    Cancelled,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::EndOfSequence => "end of reply",
            StopReason::StopString => "stop string",
            StopReason::MaxTokens => "token limit",
            StopReason::ContextFull => "context full",
            StopReason::Cancelled => "cancelled",
        })
    }
}

/// Figures for one response.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from the cache.
    pub reused_tokens: usize,
    /// Prompt tokens run through the model.
    pub prefilled_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_seconds: f64,
    pub prefill_tokens_per_second: f64,
    pub decode_seconds: f64,
    pub decode_tokens_per_second: f64,
    /// From the request to the first generated token.
    pub time_to_first_token: f64,
    /// Most bytes MLX held during the request.
    pub peak_memory: u64,
    /// Tokens the sequence's KV cache holds after the response.
    pub cache_tokens: usize,
    /// Bytes of that cache in memory.
    pub cache_bytes: u64,
    /// Messages of a conversation the model no longer sees because the context is full.
    pub left_out_messages: usize,
}

/// A finished response.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Generation {
    pub text: String,
    /// Generated token ids, without a final end-of-sequence token.
    pub tokens: Vec<u32>,
    pub stop_reason: Option<StopReason>,
    pub stats: GenerationStats,
}

/// Receives generated text as it becomes final.
pub trait TokenSink {
    /// New text; return `false` to stop generating.
    fn text(&mut self, text: &str) -> bool;
    /// Prefill progress: `done` of `total` prompt tokens processed.
    fn prefill(&mut self, _done: usize, _total: usize) {}
    /// How many most likely alternatives to report with each generated token's log
    /// probability ([`TokenSink::token`]); `None` (the default): none are computed.
    fn logprobs(&self) -> Option<usize> {
        None
    }
    /// A generated token with its log probability, before its text reaches
    /// [`TokenSink::text`]; called only when [`TokenSink::logprobs`] asks.
    fn token(&mut self, _token: TokenLogprob) {}
}

/// A generated token's log probability under the model (before any sampling setting), and
/// the most likely tokens at its position with theirs, most likely first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

impl TokenLogprob {
    /// `token`'s log probability in the logits row `logits`, with the `top` most likely.
    pub fn from_logits(logits: &[f32], token: u32, top: usize) -> TokenLogprob {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_total = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
        let logprob = |t: u32| {
            logits
                .get(t as usize)
                .map_or(f32::NEG_INFINITY, |l| l - log_total)
        };
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let top = top.min(order.len());
        let key = |i: &u32| logits[*i as usize];
        if top > 0 && top < order.len() {
            order.select_nth_unstable_by(top - 1, |a, b| key(b).total_cmp(&key(a)));
        }
        order.truncate(top);
        order.sort_unstable_by(|a, b| key(b).total_cmp(&key(a)));
        TokenLogprob {
            token,
            logprob: logprob(token),
            top: order.into_iter().map(|t| (t, logprob(t))).collect(),
        }
    }
}

impl<F: FnMut(&str) -> bool> TokenSink for F {
    fn text(&mut self, text: &str) -> bool {
        self(text)
    }
}

/// The KV caches of one sequence and the tokens they hold.
///
/// Invariant: every layer's `offset()` equals `tokens.len()`.
#[derive(Debug, Clone)]
pub struct SequenceCache {
    pub tokens: Vec<u32>,
    pub layers: Vec<KvCache>,
}

impl SequenceCache {
    /// An empty cache for `model`.
    pub fn new(model: &Model) -> SequenceCache {
        SequenceCache {
            tokens: Vec::new(),
            layers: model.new_cache(),
        }
    }

    /// Keeps only the first `n` tokens.
    pub fn truncate(&mut self, n: usize) {
        if n < self.tokens.len() {
            let drop = self.tokens.len() - n;
            self.layers.iter_mut().for_each(|c| {
                c.trim(drop);
            });
            self.tokens.truncate(n);
        }
    }

    /// Bytes of KV storage.
    pub fn nbytes(&self) -> usize {
        self.layers.iter().map(KvCache::nbytes).sum()
    }

    /// An empty cache stored like this one (same layers, same quantization).
    pub fn empty_like(&self) -> SequenceCache {
        SequenceCache {
            tokens: Vec::new(),
            layers: self
                .layers
                .iter()
                .map(|l| KvCache::with_quant(l.quant()))
                .collect(),
        }
    }

    /// Computes the cache's pending work, so it holds data rather than a graph.
    pub fn eval(&self) -> Result<()> {
        mlx_rs::transforms::eval(self.layers.iter().flat_map(KvCache::arrays))?;
        Ok(())
    }
}

/// Length of the longest common prefix of `a` and `b`.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Runs `prompt` through `model` (reusing what `cache` already holds) and generates a reply.
pub fn generate(
    model: &Model,
    tokenizer: &Tokenizer,
    cache: &mut SequenceCache,
    prompt: &[u32],
    params: &GenerateParams,
    sink: &mut dyn TokenSink,
) -> Result<Generation> {
    let started = Instant::now();
    params
        .sampling
        .validate()
        .map_err(EngineError::InvalidRequest)?;
    if prompt.is_empty() {
        return Err(EngineError::InvalidRequest("the prompt is empty".into()));
    }
    let context = model.args.max_position_embeddings;
    if prompt.len() >= context {
        return Err(EngineError::InvalidRequest(format!(
            "the prompt has {} tokens but the model's context holds {context}; shorten the \
             conversation or start a new one",
            prompt.len()
        )));
    }
    mlx_rs::memory::reset_peak_memory()?;

    // Reuse the cached prefix; at least one token must run to produce logits.
    let common = common_prefix(&cache.tokens, prompt).min(prompt.len() - 1);
    cache.truncate(common);
    let mut stats = GenerationStats {
        prompt_tokens: prompt.len(),
        reused_tokens: common,
        prefilled_tokens: prompt.len() - common,
        ..GenerationStats::default()
    };

    let mut trace = Trace::new();
    let logits = prefill(
        model,
        cache,
        &prompt[common..],
        params.prefill_chunk,
        sink,
        &mut trace,
    )?;
    stats.prefill_seconds = started.elapsed().as_secs_f64();

    let budget = params.max_tokens.min(context - prompt.len());
    let mut out = Emitter {
        detok: StreamingDetokenizer::new(tokenizer, true),
        stop: StopFilter::new(&params.stop),
        eos: tokenizer.eos_token_ids(),
        ignore_eos: params.ignore_eos,
        tokens: Vec::new(),
        first_token_at: None,
        sink,
    };
    let reason = if is_plain_greedy(&params.sampling) && out.sink.logprobs().is_none() {
        decode_greedy(model, cache, logits, budget, &mut out, &mut trace)?
    } else {
        decode_sampled(model, cache, logits, budget, params, prompt, &mut out)?
    };
    let reason = reason.unwrap_or(if budget < params.max_tokens {
        StopReason::ContextFull
    } else {
        StopReason::MaxTokens
    });
    if reason != StopReason::StopString {
        let tail = out.stop.finish(&out.detok.finish()?);
        if !tail.is_empty() {
            out.sink.text(&tail);
        }
    }
    let (tokens, first_token_at, text) = (out.tokens, out.first_token_at, out.stop.text);
    let reason = Some(reason);

    trace.report();
    let done = Instant::now();
    let first = first_token_at.unwrap_or(done);
    stats.generated_tokens = tokens.len();
    stats.time_to_first_token = first.duration_since(started).as_secs_f64();
    stats.prefill_tokens_per_second = per_second(stats.prefilled_tokens, stats.prefill_seconds);
    stats.decode_seconds = done.duration_since(first).as_secs_f64();
    stats.decode_tokens_per_second =
        per_second(tokens.len().saturating_sub(1), stats.decode_seconds);
    stats.peak_memory = mlx_rs::memory::peak_memory()? as u64;
    stats.cache_tokens = cache.tokens.len();
    stats.cache_bytes = cache.nbytes() as u64;
    Ok(Generation {
        text,
        tokens,
        stop_reason: reason,
        stats,
    })
}

/// Where a response's time went, printed to standard error when `ADAPT_TRACE=1` (a diagnostic
/// for the GPU work: graph building against waiting for the device).
#[derive(Default)]
struct Trace {
    on: bool,
    /// Per prefill forward: tokens, context before it, seconds to build and to run it.
    prefill: Vec<(usize, usize, f64, f64)>,
    /// Decode steps: seconds building graphs, submitting them, waiting for tokens, and on the
    /// host (detokenizing, stop strings, the sink).
    build: f64,
    submit: f64,
    wait: f64,
    host: f64,
    steps: usize,
}

impl Trace {
    fn new() -> Trace {
        Trace {
            on: crate::device::trace_requested(),
            ..Trace::default()
        }
    }

    /// Times `f` into the slot `pick` chooses.
    fn time<T>(&mut self, pick: fn(&mut Trace) -> &mut f64, f: impl FnOnce() -> T) -> T {
        if !self.on {
            return f();
        }
        let started = Instant::now();
        let out = f();
        *pick(self) += started.elapsed().as_secs_f64();
        out
    }

    fn report(&self) {
        if !self.on {
            return;
        }
        for (tokens, context, build, run) in &self.prefill {
            eprintln!(
                "trace: prefill {tokens} tokens after {context}: build {:.2} ms, run {:.2} ms",
                build * 1e3,
                run * 1e3
            );
        }
        let per = |x: f64| x * 1e3 / self.steps.max(1) as f64;
        eprintln!(
            "trace: {} decode steps, per step: build {:.3} ms, submit {:.3} ms, wait {:.3} ms, \
             host {:.3} ms",
            self.steps,
            per(self.build),
            per(self.submit),
            per(self.wait),
            per(self.host)
        );
    }
}

/// Hands sampled tokens to the sink as text, and says when generation must stop.
struct Emitter<'a> {
    detok: StreamingDetokenizer,
    stop: StopFilter<'a>,
    eos: &'a [u32],
    ignore_eos: bool,
    tokens: Vec<u32>,
    first_token_at: Option<Instant>,
    sink: &'a mut dyn TokenSink,
}

impl Emitter<'_> {
    /// Takes one sampled token (with its log probability when the sink asked for them);
    /// `Some(reason)` when generation ends with it.
    fn accept(&mut self, token: u32, logprob: Option<TokenLogprob>) -> Result<Option<StopReason>> {
        self.first_token_at.get_or_insert_with(Instant::now);
        if !self.ignore_eos && self.eos.contains(&token) {
            return Ok(Some(StopReason::EndOfSequence));
        }
        if let Some(logprob) = logprob {
            self.sink.token(logprob);
        }
        self.tokens.push(token);
        let piece = self.detok.push(token)?;
        Ok(match self.stop.push(&piece) {
            StopOutcome::Emit(text) => {
                (!text.is_empty() && !self.sink.text(&text)).then_some(StopReason::Cancelled)
            }
            StopOutcome::Stop(text) => {
                if !text.is_empty() {
                    self.sink.text(&text);
                }
                Some(StopReason::StopString)
            }
        })
    }
}

/// Greedy decoding without penalties, which can pick tokens on the device.
fn is_plain_greedy(p: &SamplingParams) -> bool {
    p.temperature == 0.0 && p.repetition_penalty == 1.0
}

/// Greedy decoding with the next step queued before the current token is read: while the host
/// turns token `n` into text, the device already computes step `n + 1` from it (a step that is
/// rolled back if generation ends at `n`). The first token is read before step two is queued,
/// so the time to first token does not also wait for building and submitting that step.
/// `None`: the budget ran out.
fn decode_greedy(
    model: &Model,
    cache: &mut SequenceCache,
    logits: Array,
    budget: usize,
    out: &mut Emitter,
    trace: &mut Trace,
) -> Result<Option<StopReason>> {
    let first = argmax_axis(&logits, -1, None)?;
    let token = trace.time(|t| &mut t.wait, || first.item_exact::<u32>());
    if let Some(reason) = out.accept(token, None)? {
        return Ok(Some(reason));
    }
    if out.tokens.len() >= budget {
        return Ok(None);
    }
    let mut pending = queue_step(model, cache, &first, trace)?;
    cache.tokens.push(token);
    while out.tokens.len() < budget {
        let feed = out.tokens.len() + 1 < budget;
        let next = if feed {
            Some(queue_step(model, cache, &pending, trace)?)
        } else {
            None
        };
        let token = trace.time(|t| &mut t.wait, || pending.item_exact::<u32>());
        trace.steps += 1;
        let stop = trace.time(|t| &mut t.host, || out.accept(token, None))?;
        match (stop, next) {
            (Some(reason), next) => {
                if let Some(next) = next {
                    // The token was fed speculatively: let that step finish (no work may be
                    // left in flight when generation returns), then forget it.
                    next.eval()?;
                    cache.layers.iter_mut().for_each(|c| {
                        c.trim(1);
                    });
                }
                return Ok(Some(reason));
            }
            (None, Some(next)) => {
                cache.tokens.push(token);
                pending = next;
            }
            (None, None) => {}
        }
    }
    Ok(None)
}

/// Builds the decode step that feeds `token` (a `[1]` array on the device, not yet read) and
/// queues it without waiting; returns its greedy token.
fn queue_step(
    model: &Model,
    cache: &mut SequenceCache,
    token: &Array,
    trace: &mut Trace,
) -> Result<Array> {
    let next = trace.time(
        |t| &mut t.build,
        || -> Result<Array> {
            let ids = token.reshape(&[1, 1])?;
            Ok(argmax_axis(
                &model.forward_last(&ids, &mut cache.layers)?,
                -1,
                None,
            )?)
        },
    )?;
    trace.time(
        |t| &mut t.submit,
        || mlx_rs::transforms::async_eval([&next]),
    )?;
    Ok(next)
}

/// Decoding with any sampling settings, on the host: logits row → sampler → token.
fn decode_sampled(
    model: &Model,
    cache: &mut SequenceCache,
    mut logits: Array,
    budget: usize,
    params: &GenerateParams,
    prompt: &[u32],
    out: &mut Emitter,
) -> Result<Option<StopReason>> {
    let mut sampler = Sampler::new(params.sampling.clone());
    let mut history: Vec<u32> = prompt.to_vec();
    let logprobs = out.sink.logprobs();
    while out.tokens.len() < budget {
        let row = logits_row(&logits)?;
        let token = sampler.sample(&row, &history);
        let logprob = logprobs.map(|top| TokenLogprob::from_logits(&row, token, top));
        if let Some(reason) = out.accept(token, logprob)? {
            return Ok(Some(reason));
        }
        history.push(token);
        if out.tokens.len() >= budget {
            break;
        }
        // Feed the token; the last sampled one is never fed, so the cache only holds
        // tokens the model has processed.
        let ids = Array::from_slice(&[token as i32], &[1, 1]);
        logits = model.forward_last(&ids, &mut cache.layers)?;
        cache.tokens.push(token);
    }
    Ok(None)
}

/// Makes `cache` hold exactly `target`: keeps the longest prefix it shares with it and runs
/// the rest through the model in chunks of `chunk` tokens (no logits are computed). Returns
/// the number of tokens run.
pub fn prefill_to(
    model: &Model,
    cache: &mut SequenceCache,
    target: &[u32],
    chunk: usize,
) -> Result<usize> {
    cache.truncate(common_prefix(&cache.tokens, target));
    let start = cache.tokens.len();
    for part in target[start..].chunks(chunk.max(1)) {
        let ids: Vec<i32> = part.iter().map(|&t| t as i32).collect();
        let ids = Array::from_slice(&ids, &[1, ids.len() as i32]);
        model.forward(&ids, &mut cache.layers)?;
        cache.eval()?;
        cache.tokens.extend_from_slice(part);
    }
    Ok(target.len() - start)
}

/// Runs `tokens` through the model in chunks, extending `cache`; returns the last logits.
fn prefill(
    model: &Model,
    cache: &mut SequenceCache,
    tokens: &[u32],
    chunk: usize,
    sink: &mut dyn TokenSink,
    trace: &mut Trace,
) -> Result<Array> {
    let chunk = chunk.max(1);
    let total = tokens.len();
    let mut done = 0;
    loop {
        let part = &tokens[done..(done + chunk).min(total)];
        let ids: Vec<i32> = part.iter().map(|&t| t as i32).collect();
        let ids = Array::from_slice(&ids, &[1, ids.len() as i32]);
        let last = done + part.len() == total;
        let context = cache.tokens.len();
        let started = Instant::now();
        if last {
            let logits = model.forward_last(&ids, &mut cache.layers)?;
            let built = started.elapsed().as_secs_f64();
            mlx_rs::transforms::eval([&logits])?;
            if trace.on {
                let ran = started.elapsed().as_secs_f64() - built;
                trace.prefill.push((part.len(), context, built, ran));
            }
            cache.tokens.extend_from_slice(part);
            sink.prefill(total, total);
            return Ok(logits);
        }
        // Only the caches are needed: MLX never computes the unused logits.
        model.forward(&ids, &mut cache.layers)?;
        let built = started.elapsed().as_secs_f64();
        cache.eval()?;
        if trace.on {
            let ran = started.elapsed().as_secs_f64() - built;
            trace.prefill.push((part.len(), context, built, ran));
        }
        cache.tokens.extend_from_slice(part);
        done += part.len();
        sink.prefill(done, total);
    }
}

/// The logits of the first (only) sequence as f32 values on the host.
fn logits_row(logits: &Array) -> Result<Vec<f32>> {
    let logits = if logits.dtype() == Dtype::Float32 {
        logits.clone()
    } else {
        logits.as_dtype(Dtype::Float32)?
    };
    logits.eval()?;
    let row = logits.try_as_slice::<f32>().map_err(|e| {
        EngineError::InvalidRequest(format!("cannot read logits from the device: {e}"))
    })?;
    let vocab = *logits.shape().last().unwrap_or(&0) as usize;
    Ok(row[..vocab].to_vec())
}

fn per_second(n: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// Holds back text that might be the start of a stop string.
struct StopFilter<'a> {
    stops: &'a [String],
    /// All text accepted so far (what the response will be).
    text: String,
    /// Bytes of `text` already handed on.
    emitted: usize,
}

enum StopOutcome {
    Emit(String),
    Stop(String),
}

impl<'a> StopFilter<'a> {
    fn new(stops: &'a [String]) -> Self {
        StopFilter {
            stops,
            text: String::new(),
            emitted: 0,
        }
    }

    fn push(&mut self, piece: &str) -> StopOutcome {
        self.text.push_str(piece);
        let pending = &self.text[self.emitted..];
        let hit = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| pending.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            self.text.truncate(self.emitted + at);
            let out = self.text[self.emitted..].to_string();
            self.emitted = self.text.len();
            return StopOutcome::Stop(out);
        }
        let hold = self.partial_stop_suffix(pending);
        let safe = self.text.len() - hold;
        let out = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        StopOutcome::Emit(out)
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of a stop string.
    fn partial_stop_suffix(&self, pending: &str) -> usize {
        let mut best = 0;
        for stop in self.stops {
            for (i, _) in pending.char_indices() {
                let suffix = &pending[i..];
                if suffix.len() > best && suffix.len() < stop.len() && stop.starts_with(suffix) {
                    best = suffix.len();
                }
            }
        }
        best
    }

    /// Accepts the detokenizer's final text and returns everything not yet handed on.
    fn finish(&mut self, tail: &str) -> String {
        self.text.push_str(tail);
        let out = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut f = StopFilter::new(&stops);
        let mut out = Vec::new();
        for p in pieces {
            match f.push(p) {
                StopOutcome::Emit(t) => out.push(t),
                StopOutcome::Stop(t) => {
                    out.push(t);
                    return (out, true);
                }
            }
        }
        out.push(f.finish(""));
        (out, false)
    }

    #[test]
    fn logprobs_are_normalized_and_the_top_ones_sorted() {
        let logits = [1.0f32, 3.0, 2.0, -1.0];
        let lp = TokenLogprob::from_logits(&logits, 2, 2);
        let total: f32 = logits.iter().map(|l| l.exp()).sum();
        assert!((lp.logprob - (2.0f32.exp() / total).ln()).abs() < 1e-5);
        assert_eq!(lp.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((lp.top[1].1 - lp.logprob).abs() < 1e-6);
        assert!(TokenLogprob::from_logits(&logits, 0, 0).top.is_empty());
        assert_eq!(TokenLogprob::from_logits(&logits, 0, 9).top.len(), 4);
    }

    #[test]
    fn stop_string_split_across_pieces_is_never_emitted() {
        let (out, stopped) = run(&["</end>"], &["Hello </", "en", "d> more"]);
        assert!(stopped);
        assert_eq!(out.concat(), "Hello ");
        assert_eq!(out[0], "Hello ");
    }

    #[test]
    fn held_back_text_is_released_when_it_is_not_a_stop() {
        let (out, stopped) = run(&["</end>"], &["a </", "b"]);
        assert!(!stopped);
        assert_eq!(out, vec!["a ", "</b", ""]);
    }

    #[test]
    fn earliest_of_several_stops_wins_and_unicode_is_safe() {
        let (out, stopped) = run(&["ZZ", "é!"], &["xé", "!yZZ"]);
        assert!(stopped);
        assert_eq!(out.concat(), "x");
    }
}
