//! Benchmarks of the loaded model: prefill and decode speed on a fixed-length prompt, and the
//! chat cache's cold turn against a warm one (and saving and reopening the conversation).

use adapt_engine::chat_bench::{bench_warm_cold, ChatBench};
use adapt_engine::isolate::{self, IsolationOptions, IsolationReport};
use adapt_engine::{generate, GenerateParams, GenerationStats, LoadedModel, SequenceCache};

use crate::adapt::Adapt;
use crate::error::ApiError;

impl Adapt {
    /// The topic-isolation experiment over the conversation set in `data` with the loaded
    /// model: the four conditions of [`adapt_engine::isolate`]; `on_progress` hears
    /// (conversations done, total). `limit` keeps the first conversations only.
    pub fn isolate_bench(
        &self,
        data: &std::path::Path,
        options: IsolationOptions,
        limit: Option<usize>,
        on_progress: impl FnMut((usize, usize)),
    ) -> Result<IsolationReport, ApiError> {
        let mut set = adapt_data::isolation::read_set(data)?;
        if let Some(n) = limit {
            set.truncate(n.max(1));
        }
        self.engine.relay(
            move |state, emit| {
                let lm = state.loaded()?;
                Ok(isolate::run(lm, &set, &options, &mut |done, total| {
                    emit((done, total))
                })?)
            },
            on_progress,
        )
    }

    /// Times prefill of `prompt_tokens` tokens and decoding of `generate_tokens` tokens with
    /// the loaded model, `runs` times.
    pub fn bench(
        &self,
        prompt_tokens: usize,
        generate_tokens: usize,
        runs: usize,
    ) -> Result<Vec<GenerationStats>, ApiError> {
        self.engine.call(move |state| {
            bench_on_engine(state.loaded()?, prompt_tokens, generate_tokens, runs)
        })
    }

    /// With a conversation history of `history_tokens` tokens: time to first token of a cold
    /// turn and of a warm one, and saving and reopening the conversation with its cache (kept
    /// in `kv_bits` bits when given); after a warm-up pass, the medians of `samples` passes
    /// (at least 3).
    pub fn bench_chat(
        &self,
        history_tokens: usize,
        kv_bits: Option<i32>,
        samples: usize,
    ) -> Result<ChatBench, ApiError> {
        let dir = std::env::temp_dir().join(format!("adapt-chat-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| ApiError::io("create", &dir, e))?;
        let folder = dir.clone();
        let result = self.engine.call(move |state| {
            Ok(bench_warm_cold(
                state.loaded()?,
                history_tokens,
                kv_bits,
                &folder,
                samples,
            )?)
        });
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}

/// On the engine thread: prefill of a fixed-length prompt of pseudo-random ordinary tokens,
/// then greedy decoding of a fixed number of tokens (end-of-sequence ignored), from an empty
/// cache each run.
fn bench_on_engine(
    lm: &LoadedModel,
    prompt_tokens: usize,
    generate_tokens: usize,
    runs: usize,
) -> Result<Vec<GenerationStats>, ApiError> {
    let vocab = lm.model.args.vocab_size as u64;
    // Skip the first ids, where special tokens usually live.
    let (low, span) = (vocab.min(1000), vocab - vocab.min(1000));
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let prompt: Vec<u32> = (0..prompt_tokens)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (low + state % span.max(1)) as u32
        })
        .collect();
    let params = GenerateParams {
        max_tokens: generate_tokens,
        ignore_eos: true,
        ..GenerateParams::default()
    };
    (0..runs)
        .map(|_| {
            let mut cache = SequenceCache::new(&lm.model);
            let mut sink = |_: &str| true;
            generate(
                &lm.model,
                &lm.tokenizer,
                &mut cache,
                &prompt,
                &params,
                &mut sink,
            )
            .map(|g| g.stats)
            .map_err(ApiError::from)
        })
        .collect()
}
