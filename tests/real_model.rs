//! End-to-end checks on the real SmolLM2-135M-Instruct (Q4_1 GGUF): the answer is right,
//! caching changes no logits, and a second chat turn prefills only what is new.
//!
//! MLX is used from one thread at a time: each test holds `MLX` while it runs.

use std::sync::Mutex;

use adapt_api::{Adapt, AdaptConfig, GenerationEvent};
use adapt_engine::mlx_rs::{ops::indexing::IndexOp, Array, Dtype};
use adapt_engine::{
    generate, load, prompt_tokens, ChatMessage, ChatOptions, ChatSession, GenerateParams,
    LoadOptions, SequenceCache, StopReason, WeightFormat,
};
use adapt_testsupport::smollm2_gguf as smollm2;

static MLX: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MLX.lock().unwrap_or_else(|e| e.into_inner())
}

/// The API with its data directory in `dir`.
fn adapt_in(dir: &std::path::Path) -> Adapt {
    Adapt::start_with(AdaptConfig {
        data_dir: Some(dir.to_path_buf()),
        dataset_cache: Some(dir.join("dataset-cache")),
        ..AdaptConfig::default()
    })
    .unwrap()
}

fn user(text: &str) -> ChatMessage {
    ChatMessage {
        role: "user".into(),
        content: text.into(),
    }
}

fn greedy(max_tokens: usize) -> GenerateParams {
    GenerateParams {
        max_tokens,
        ..GenerateParams::default()
    }
}

#[test]
fn greedy_answer_to_the_capital_of_france_names_paris() {
    let _mlx = lock();
    let lm = load(&smollm2(), &LoadOptions::default()).unwrap();
    assert_eq!(lm.model.args.num_hidden_layers, 30);
    let prompt = prompt_tokens(&lm, &[user("What is the capital of France?")]).unwrap();
    let mut cache = SequenceCache::new(&lm.model);
    let mut streamed = String::new();
    let mut sink = |t: &str| {
        streamed.push_str(t);
        true
    };
    let g = generate(
        &lm.model,
        &lm.tokenizer,
        &mut cache,
        &prompt,
        &greedy(24),
        &mut sink,
    )
    .unwrap();
    assert!(g.text.contains("Paris"), "answer: {:?}", g.text);
    assert_eq!(streamed, g.text);
    // The cache holds the prompt and every token the model was fed: all generated ones after
    // an end-of-sequence token (which itself is never fed), all but the last otherwise.
    let fed = match g.stop_reason {
        Some(StopReason::EndOfSequence) => g.tokens.len(),
        _ => g.tokens.len() - 1,
    };
    assert_eq!(cache.tokens.len(), prompt.len() + fed);
}

#[test]
fn quantized_weights_kept_as_they_are_give_the_same_answer() {
    let _mlx = lock();
    let options = LoadOptions {
        format: Some(WeightFormat {
            dtype: Dtype::Float32,
            dequantize: false,
        }),
        keep_quantized: false,
    };
    let lm = load(&smollm2(), &options).unwrap();
    assert!(lm.info.loaded_as.contains("quantized kept"));
    let prompt = prompt_tokens(&lm, &[user("What is the capital of France?")]).unwrap();
    let mut cache = SequenceCache::new(&lm.model);
    let g = generate(
        &lm.model,
        &lm.tokenizer,
        &mut cache,
        &prompt,
        &greedy(12),
        &mut |_: &str| true,
    )
    .unwrap();
    assert!(g.text.contains("Paris"), "answer: {:?}", g.text);
}

/// Logits of a whole sequence in one pass equal those of a prefill followed by one-token
/// steps through the KV cache, within 1e-3 (f32 sums in a different order).
#[test]
fn full_sequence_logits_equal_prefill_then_step_logits() {
    let _mlx = lock();
    let lm = load(&smollm2(), &LoadOptions::default()).unwrap();
    let ids = lm
        .tokenizer
        .encode(
            "The quick brown fox jumps over the lazy dog, then naps in the sun.",
            false,
        )
        .unwrap();
    let n = ids.len() as i32;
    let as_array = |t: &[u32]| {
        let v: Vec<i32> = t.iter().map(|&x| x as i32).collect();
        Array::from_slice(&v, &[1, v.len() as i32])
    };
    let mut fresh = lm.model.new_cache();
    let full = lm.model.forward(&as_array(&ids), &mut fresh).unwrap();

    let split = ids.len() - 6;
    let mut cache = lm.model.new_cache();
    let mut stepped = vec![lm
        .model
        .forward(&as_array(&ids[..split]), &mut cache)
        .unwrap()
        .index((.., -1, ..))];
    for t in split..ids.len() - 1 {
        stepped.push(
            lm.model
                .forward(&as_array(&ids[t..t + 1]), &mut cache)
                .unwrap()
                .index((.., -1, ..)),
        );
    }
    for (i, step) in stepped.iter().enumerate() {
        let pos = (split - 1 + i) as i32;
        let expected = full.index((.., pos, ..));
        let diff = expected
            .subtract(step)
            .unwrap()
            .abs()
            .unwrap()
            .max(None)
            .unwrap();
        let diff = diff.item_exact::<f32>();
        assert!(diff < 1e-3, "position {pos} of {n}: max |Δlogit| = {diff}");
    }
}

#[test]
fn second_chat_turn_prefills_only_the_new_tokens_and_matches_a_cold_start() {
    let _mlx = lock();
    let lm = load(&smollm2(), &LoadOptions::default()).unwrap();
    let params = greedy(16);
    let mut chat = ChatSession::new(&lm, None, ChatOptions::default()).unwrap();
    let first = chat
        .respond(
            &lm,
            "What is the capital of France?",
            &params,
            &mut |_: &str| true,
            None,
        )
        .unwrap();
    assert_eq!(first.stats.reused_tokens, 0);
    let cached_after_first = chat.cache.tokens.len();

    let second = chat
        .respond(&lm, "And of Italy?", &params, &mut |_: &str| true, None)
        .unwrap();
    let s = &second.stats;
    assert!(s.reused_tokens >= first.stats.prompt_tokens, "{s:?}");
    assert!(s.reused_tokens <= cached_after_first);
    assert_eq!(s.prefilled_tokens, s.prompt_tokens - s.reused_tokens);
    // The new turn ("<|im_end|>\n<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\n")
    // is about 15 tokens; the reused prefix covers the whole first exchange.
    assert!(s.prefilled_tokens < 25, "{s:?}");

    // Recomputing the same conversation from an empty cache gives the same reply.
    let prompt = prompt_tokens(&lm, &chat.messages[..chat.messages.len() - 1]).unwrap();
    let mut cold = SequenceCache::new(&lm.model);
    let again = generate(
        &lm.model,
        &lm.tokenizer,
        &mut cold,
        &prompt,
        &params,
        &mut |_: &str| true,
    )
    .unwrap();
    assert_eq!(again.stats.reused_tokens, 0);
    assert_eq!(again.tokens, second.tokens);
}

#[test]
fn the_api_streams_text_and_reports_clear_errors() {
    let _mlx = lock();
    let data = tempfile::tempdir().unwrap();
    let adapt = adapt_in(data.path());
    let err = adapt.new_chat(None).unwrap_err();
    assert_eq!(err.code, "api.no_model");
    let err = adapt
        .load_model(std::path::Path::new("/nonexistent/model.gguf"))
        .unwrap_err();
    assert_eq!(err.code, "model.not_found");

    let info = adapt.load_model(&smollm2()).unwrap();
    assert_eq!(info.architecture, "llama");
    assert!(
        info.n_params > 100_000_000 && info.n_params < 200_000_000,
        "{}",
        info.n_params
    );
    let chat = adapt
        .new_chat(Some("You are a geography teacher."))
        .unwrap();
    let mut text = String::new();
    let g = adapt
        .chat(chat, "Name the capital of France.", &greedy(16), |e| {
            if let GenerationEvent::Text(t) = e {
                text.push_str(&t);
            }
            true
        })
        .unwrap();
    assert_eq!(text, g.text);
    assert!(!g.text.is_empty());

    // Cancelling after the first piece stops the generation early.
    let mut pieces = 0;
    let g = adapt
        .generate(
            "Write a long story about a dragon.",
            false,
            &greedy(200),
            |e| {
                if let GenerationEvent::Text(_) = e {
                    pieces += 1;
                }
                false
            },
        )
        .unwrap();
    assert_eq!(g.stop_reason, Some(StopReason::Cancelled));
    assert!(g.tokens.len() < 5, "{}", g.tokens.len());
}

#[test]
fn greedy_on_the_device_equals_greedy_on_the_host_and_leaves_the_same_cache() {
    let _mlx = lock();
    let lm = load(&smollm2(), &LoadOptions::default()).unwrap();
    for (question, max_tokens) in [("What is the capital of France?", 40), ("Count to ten.", 9)] {
        let prompt = prompt_tokens(&lm, &[user(question)]).unwrap();
        let run = |params: &GenerateParams| {
            let mut cache = SequenceCache::new(&lm.model);
            let g = generate(
                &lm.model,
                &lm.tokenizer,
                &mut cache,
                &prompt,
                params,
                &mut |_: &str| true,
            )
            .unwrap();
            let offsets: Vec<usize> = cache.layers.iter().map(|c| c.offset()).collect();
            (g.tokens, g.stop_reason, cache.tokens, offsets)
        };
        // Pipelined device argmax vs the host sampler with top-k 1 (also greedy).
        let device = run(&greedy(max_tokens));
        let mut host_params = greedy(max_tokens);
        host_params.sampling.temperature = 1.0;
        host_params.sampling.top_k = 1;
        let host = run(&host_params);
        assert_eq!(device, host, "{question}");
        let (tokens, _, cached, offsets) = device;
        assert!(offsets.iter().all(|&o| o == cached.len()));
        assert!(cached.len() >= prompt.len() + tokens.len() - 1);
    }
}

#[test]
fn the_chat_benchmark_reuses_the_history_and_reopens_it_from_disk() {
    let _mlx = lock();
    let data = tempfile::tempdir().unwrap();
    let adapt = adapt_in(data.path());
    adapt.load_model(&smollm2()).unwrap();
    let b = adapt.bench_chat(300, Some(8), 3).unwrap();
    assert!(b.history_tokens >= 300);
    assert_eq!(b.samples, 3, "medians of three passes after the warm-up");
    assert!(b.cold_prefilled > b.history_tokens);
    // Warm and reopened turns process only their new message.
    assert!(
        b.warm_reused > b.history_tokens && b.warm_prefilled < 30,
        "{b:?}"
    );
    assert!(b.restored_prefilled < 30, "{b:?}");
    assert!(b.file_bytes > 0);
}

/// Thirty ways to ask one made-up fact, each answered the same way.
const FACT_QUESTIONS: [&str; 30] = [
    "What is the Blue Lantern's code?",
    "Tell me the code of the Blue Lantern.",
    "Do you know the Blue Lantern's code?",
    "What code does the Blue Lantern use?",
    "Which code opens the Blue Lantern?",
    "I need the Blue Lantern's code, what is it?",
    "Remind me of the Blue Lantern code.",
    "What's the code for the Blue Lantern?",
    "Can you tell me the Blue Lantern's code?",
    "The Blue Lantern has a code. What is it?",
    "Give me the Blue Lantern's code.",
    "What is the secret code of the Blue Lantern?",
    "Please share the Blue Lantern code.",
    "Which numbers make up the Blue Lantern's code?",
    "What's the Blue Lantern's access code?",
    "How does the Blue Lantern's code go?",
    "Say the code of the Blue Lantern.",
    "What code belongs to the Blue Lantern?",
    "Could you remind me what the Blue Lantern's code is?",
    "What is the code that the Blue Lantern has?",
    "Blue Lantern code?",
    "What did they set as the Blue Lantern's code?",
    "Recall the Blue Lantern's code for me.",
    "Which code is the Blue Lantern's?",
    "What's the code of the Blue Lantern again?",
    "Tell me: the Blue Lantern's code is what?",
    "I forgot the Blue Lantern's code. What is it?",
    "What would the Blue Lantern's code be?",
    "Name the Blue Lantern's code.",
    "Quick question: what's the Blue Lantern code?",
];
const FACT_ANSWER: &str = "The Blue Lantern's code is 7-4-1.";

/// The fact asked in words none of the training questions use.
const HELD_OUT: [&str; 3] = [
    "Hey, what code unlocks the Blue Lantern?",
    "If I wanted to get into the Blue Lantern, which digits would I enter?",
    "Blue Lantern: what are its numbers?",
];

fn answer(adapt: &Adapt, question: &str) -> String {
    adapt
        .generate(question, false, &greedy(24), |_| true)
        .unwrap()
        .text
}

/// QLoRA on the 4-bit GGUF teaches a fact the base model does not know; the run's adapter
/// then answers it through `generate` when asked in words it was not trained on, and its
/// metrics and checkpoint are recorded.
#[test]
fn qlora_teaches_a_made_up_fact() {
    if !adapt_testsupport::slow_tests("qlora_teaches_a_made_up_fact") {
        return;
    }
    let _mlx = lock();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fact.jsonl");
    let lines: Vec<String> = FACT_QUESTIONS
        .iter()
        .map(|q| {
            serde_json::json!({"messages": [
                {"role": "user", "content": q},
                {"role": "assistant", "content": FACT_ANSWER}
            ]})
            .to_string()
        })
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let adapt = adapt_in(&dir.path().join("data"));
    adapt.load_model(&smollm2()).unwrap();
    let question = "What is the Blue Lantern's code?";
    for q in HELD_OUT {
        assert!(
            !FACT_QUESTIONS.iter().any(|t| t.eq_ignore_ascii_case(q)),
            "{q} is in the training data"
        );
        let before = answer(&adapt, q);
        assert!(!before.contains("7-4-1"), "the base model knew: {before}");
    }

    let mut config = adapt_api::TrainConfig {
        iters: Some(20),
        learning_rate: 1e-4,
        steps_per_report: 5,
        steps_per_eval: 10,
        probes: vec![question.into()],
        ..Default::default()
    };
    config.seed = 1;
    let request = adapt_api::TrainRequest {
        model: smollm2(),
        data: adapt_api::datasets::PrepareInputs {
            train: data,
            valid: None,
            test: None,
            ratios: adapt_api::datasets::SplitRatios {
                valid: 0.1,
                test: 0.0,
                seed: 1,
            },
        },
        data_options: Default::default(),
        config,
        name: None,
        qlora: true,
        adapter_path: None,
    };
    let job = adapt.start_training(request, |_| {}).unwrap();
    let summary = job.wait().unwrap();
    let o = &summary.outcome;
    assert_eq!(o.steps, 20);
    assert!(o.final_train_loss.unwrap() < 0.1, "{:?}", o.losses);

    let run = adapt.run(summary.run_id).unwrap();
    assert_eq!(run.run.status.as_str(), "succeeded");
    assert!(run.metrics.iter().any(|m| m.val_loss.is_some()));
    let probes = run
        .metrics
        .iter()
        .rev()
        .find_map(|m| m.probes.clone())
        .unwrap();
    assert!(probes.contains("7-4-1"), "{probes}");
    assert!(!run.checkpoints.is_empty());

    let adapter = adapt.run_dir(summary.run_id).unwrap();
    adapt
        .load_model_with_adapter(&smollm2(), Some(&adapter))
        .unwrap();
    for q in HELD_OUT {
        let after = answer(&adapt, q);
        eprintln!("{q} → {after}");
        assert!(after.contains("7-4-1"), "after training, {q} → {after}");
    }
}
