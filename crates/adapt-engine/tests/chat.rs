//! Conversations with a cache, on a tiny random model with SmolLM2's tokenizer and chat
//! template: every cached turn produces the tokens a recomputation from scratch produces
//! (greedy), interleaved conversations produce what each produces alone, forks, edits,
//! regeneration, shared openings, context overflow, quantized caches and the memory budget.

use std::sync::Mutex;

use adapt_engine::testing::{tiny_chat_model, tiny_llama_args};
use adapt_engine::{
    generate, prompt_tokens, ChatMessage, ChatOptions, ChatPool, ChatSession, GenerateParams,
    Generation, LoadedModel, ModelArgs, Overflow, PrefixTrie, Tokenizer,
};

static MLX: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MLX.lock().unwrap_or_else(|e| e.into_inner())
}

fn tokenizer() -> Tokenizer {
    let gguf = adapt_gguf::GgufFile::open(adapt_testsupport::smollm2_gguf()).unwrap();
    Tokenizer::from_gguf(&gguf).unwrap()
}

/// Head dimension 32, so the cache can be quantized.
fn args(context: usize) -> ModelArgs {
    ModelArgs {
        num_attention_heads: 2,
        num_key_value_heads: 1,
        head_dim: 32,
        rope_dims: 32,
        max_position_embeddings: context,
        ..tiny_llama_args()
    }
}

fn model(context: usize) -> LoadedModel {
    tiny_chat_model(&args(context), 11, tokenizer(), "tiny-chat").unwrap()
}

fn params(max_tokens: usize) -> GenerateParams {
    GenerateParams {
        max_tokens,
        ignore_eos: true,
        ..GenerateParams::default()
    }
}

fn quiet() -> impl FnMut(&str) -> bool {
    |_: &str| true
}

/// The reply to `messages` computed from an empty cache.
fn from_scratch(lm: &LoadedModel, messages: &[ChatMessage], options: &ChatOptions) -> Vec<u32> {
    let mut cache = ChatSession::with_messages(lm, Vec::new(), options.clone())
        .unwrap()
        .cache;
    let prompt = prompt_tokens(lm, messages).unwrap();
    let g = generate(
        &lm.model,
        &lm.tokenizer,
        &mut cache,
        &prompt,
        &params(10),
        &mut quiet(),
    )
    .unwrap();
    g.tokens
}

fn say(session: &mut ChatSession, lm: &LoadedModel, text: &str) -> Generation {
    session
        .respond(lm, text, &params(10), &mut quiet(), None)
        .unwrap()
}

const TURNS: [&str; 3] = [
    "Name three rivers.",
    "Which is the longest?",
    "And the shortest one, please?",
];

#[test]
fn every_cached_turn_equals_recomputing_the_conversation() {
    let _mlx = lock();
    let lm = model(2048);
    for kv_bits in [None, Some(8), Some(4)] {
        let options = ChatOptions {
            kv_bits,
            ..ChatOptions::default()
        };
        let mut session = ChatSession::new(&lm, Some("Be brief."), options.clone()).unwrap();
        for (i, turn) in TURNS.iter().enumerate() {
            let mut history = session.messages.clone();
            history.push(ChatMessage::new("user", *turn));
            let expected = from_scratch(&lm, &history, &options);
            let before = session.cache.tokens.len();
            let g = say(&mut session, &lm, turn);
            assert_eq!(g.tokens, expected, "turn {i}, kv {kv_bits:?}");
            let prompt = prompt_tokens(&lm, &history).unwrap().len();
            assert_eq!(g.stats.prompt_tokens, prompt);
            if i > 0 {
                // Everything the cache held is reused but the end-of-turn tokens that follow
                // a reply (the rendering closes the reply, the cache ends inside it).
                assert!(
                    g.stats.reused_tokens + 3 >= before,
                    "turn {i}: {:?}",
                    g.stats
                );
                assert_eq!(g.stats.prefilled_tokens, prompt - g.stats.reused_tokens);
            }
            assert_eq!(g.stats.cache_tokens, session.cache.tokens.len());
        }
        let bytes = session.cache.nbytes();
        assert!(bytes > 0);
        if kv_bits == Some(4) {
            let dense = ChatSession::new(&lm, None, ChatOptions::default()).unwrap();
            assert!(dense.cache.layers.iter().all(|l| l.quant().is_none()));
        }
    }
}

#[test]
fn interleaved_conversations_produce_what_each_produces_alone() {
    let _mlx = lock();
    let lm = model(2048);
    let scripts: [(Option<&str>, [&str; 2]); 3] = [
        (
            Some("You are a pirate."),
            ["Hello there!", "Where is the gold?"],
        ),
        (None, ["Count to five.", "Now backwards."]),
        (
            Some("You are a pirate."),
            ["Hello there!", "What ship is this?"],
        ),
    ];
    let options = ChatOptions::default();
    let alone: Vec<Vec<Vec<u32>>> = scripts
        .iter()
        .map(|(system, turns)| {
            let mut s = ChatSession::new(&lm, *system, options.clone()).unwrap();
            turns.iter().map(|t| say(&mut s, &lm, t).tokens).collect()
        })
        .collect();

    // Interleaved in one pool, with shared openings: the third conversation starts from the
    // first one's cached opening, and its first turn is the first one's first turn.
    let mut pool = ChatPool::new();
    let ids: Vec<u64> = scripts
        .iter()
        .map(|(system, _)| {
            pool.insert(
                ChatSession::new(&lm, *system, options.clone()).unwrap(),
                None,
            )
        })
        .collect();
    let mut reused_first = Vec::new();
    for turn in 0..2 {
        for (c, (id, (_, texts))) in ids.iter().zip(&scripts).enumerate() {
            let text = texts[turn];
            let (g, _) = pool
                .turn(&lm, *id, |s, trie| {
                    s.respond(&lm, text, &params(10), &mut quiet(), Some(trie))
                })
                .unwrap();
            assert_eq!(g.tokens, alone[c][turn], "conversation {c}, turn {turn}");
            if turn == 0 {
                reused_first.push(g.stats.reused_tokens);
            }
        }
    }
    assert_eq!(reused_first[0], 0);
    // Another system message shares only the template's first tokens.
    assert!(reused_first[1] < 10, "{reused_first:?}");
    let first_prompt = prompt_tokens(&lm, &pool.get(ids[0]).unwrap().messages[..2]).unwrap();
    assert!(
        reused_first[2] > 10 && reused_first[2] < first_prompt.len(),
        "the pirate opening is reused: {reused_first:?}"
    );
    assert!(!pool.prefixes.is_empty());
}

#[test]
fn a_fork_continues_from_the_cache_and_leaves_the_original_alone() {
    let _mlx = lock();
    let lm = model(2048);
    let options = ChatOptions::default();
    let mut original = ChatSession::new(&lm, Some("Be brief."), options.clone()).unwrap();
    for t in TURNS {
        say(&mut original, &lm, t);
    }
    let twin = original.clone();
    let mut fork = original.fork(&lm, 1).unwrap();
    assert_eq!(fork.messages.len(), 3, "system, user, assistant");
    assert!(fork.cache.tokens.len() > 10);
    assert!(original.fork(&lm, 4).is_err());

    let mut expected_history = fork.messages.clone();
    expected_history.push(ChatMessage::new("user", "Tell me about lakes."));
    let expected = from_scratch(&lm, &expected_history, &options);
    let kept = fork.cache.tokens.len();
    let g = say(&mut fork, &lm, "Tell me about lakes.");
    assert_eq!(g.tokens, expected);
    assert!(g.stats.reused_tokens + 3 >= kept, "{:?}", g.stats);

    // The original goes on exactly as its untouched twin.
    let mut twin = twin;
    let a = say(&mut original, &lm, "Thanks!");
    let b = say(&mut twin, &lm, "Thanks!");
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.stats.reused_tokens, b.stats.reused_tokens);
}

#[test]
fn an_edit_or_a_regeneration_trims_the_cache_to_the_valid_prefix() {
    let _mlx = lock();
    let lm = model(2048);
    let options = ChatOptions::default();
    let mut session = ChatSession::new(&lm, Some("Be brief."), options.clone()).unwrap();
    for t in TURNS {
        say(&mut session, &lm, t);
    }
    // Edit the second user message (index 3: system, user, assistant, user).
    let unchanged = prompt_tokens(&lm, &session.messages[..3]).unwrap();
    let mut edited = session.messages[..3].to_vec();
    edited.push(ChatMessage::new("user", "Which is the widest?"));
    let expected = from_scratch(&lm, &edited, &options);
    let g = session
        .edit(&lm, 3, "Which is the widest?", &params(10), &mut quiet())
        .unwrap();
    assert_eq!(g.tokens, expected);
    assert_eq!(session.messages.len(), 5);
    let new_prompt = prompt_tokens(&lm, &edited).unwrap();
    assert!(
        g.stats.reused_tokens >= unchanged.len() - 3,
        "{:?}",
        g.stats
    );
    assert!(g.stats.reused_tokens < new_prompt.len());
    assert!(session.edit(&lm, 2, "x", &params(4), &mut quiet()).is_err());

    // Regenerating (greedy) gives the same reply and prefills one token.
    let again = session.regenerate(&lm, &params(10), &mut quiet()).unwrap();
    assert_eq!(again.tokens, g.tokens);
    assert_eq!(again.stats.prefilled_tokens, 1);
    assert_eq!(session.messages.len(), 5);
}

#[test]
fn another_adapter_or_template_option_never_reuses_a_kept_opening() {
    let _mlx = lock();
    let lm = model(2048);
    let mut trie = PrefixTrie::new();
    let plain = ChatOptions::default();
    let other = ChatOptions {
        template_options: serde_json::json!({"enable_thinking": false}),
        ..ChatOptions::default()
    };
    let mut first = ChatSession::new(&lm, Some("Hi."), plain.clone()).unwrap();
    first
        .respond(&lm, "One", &params(4), &mut quiet(), Some(&mut trie))
        .unwrap();
    let mut same = ChatSession::new(&lm, Some("Hi."), plain).unwrap();
    let g = same
        .respond(&lm, "Two", &params(4), &mut quiet(), Some(&mut trie))
        .unwrap();
    assert!(g.stats.reused_tokens > 0);
    let mut different = ChatSession::new(&lm, Some("Hi."), other).unwrap();
    let g = different
        .respond(&lm, "Two", &params(4), &mut quiet(), Some(&mut trie))
        .unwrap();
    assert_eq!(g.stats.reused_tokens, 0);
    assert_eq!(trie.len(), 2);
    while trie.evict_oldest().is_some() {}
    assert_eq!(trie.nbytes(), 0);
}

#[test]
fn a_full_context_leaves_the_oldest_turns_out_or_refuses() {
    let _mlx = lock();
    let lm = model(160);
    let long = "Tell me about the rivers and the mountains of the northern valleys today.";
    let options = ChatOptions::default();
    let mut session = ChatSession::new(&lm, Some("Be brief."), options.clone()).unwrap();
    let mut left_out = 0;
    for _ in 0..5 {
        let g = say(&mut session, &lm, long);
        left_out = g.stats.left_out_messages;
        assert!(g.stats.prompt_tokens + 10 <= 160, "{:?}", g.stats);
    }
    assert!(left_out >= 2 && left_out % 2 == 0, "left out {left_out}");
    assert_eq!(session.messages.len(), 11, "nothing is deleted");
    // The reply is what the messages still in view produce from scratch.
    let g = say(&mut session, &lm, long);
    let mut visible = vec![session.messages[0].clone()];
    let last = session.messages.len() - 1;
    visible.extend_from_slice(&session.messages[1 + g.stats.left_out_messages..last]);
    let expected = from_scratch(&lm, &visible, &options);
    assert_eq!(g.tokens, expected);

    let refuse = ChatOptions {
        overflow: Overflow::Refuse,
        ..ChatOptions::default()
    };
    let mut strict = ChatSession::new(&lm, Some("Be brief."), refuse).unwrap();
    let mut error = None;
    for _ in 0..5 {
        match strict.respond(&lm, long, &params(10), &mut quiet(), None) {
            Ok(_) => {}
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let error = error.expect("the strict conversation must refuse");
    assert!(error.contains("context holds 160"), "{error}");
}

#[test]
fn saved_caches_dense_and_quantized_continue_like_the_ones_in_memory() {
    let _mlx = lock();
    let lm = model(2048);
    let dir = tempfile::tempdir().unwrap();
    for kv_bits in [None, Some(8)] {
        let options = ChatOptions {
            kv_bits,
            ..ChatOptions::default()
        };
        let mut session = ChatSession::new(&lm, Some("Be brief."), options).unwrap();
        say(&mut session, &lm, TURNS[0]);
        let path = dir.path().join(format!("c-{kv_bits:?}.safetensors"));
        session.save(&lm, &path).unwrap();
        let mut reopened = ChatSession::open(&lm, &path).unwrap();
        assert_eq!(reopened.options.kv_bits, kv_bits);
        assert_eq!(reopened.cache.tokens, session.cache.tokens);
        let a = say(&mut session, &lm, TURNS[1]);
        let b = say(&mut reopened, &lm, TURNS[1]);
        assert_eq!(a.tokens, b.tokens, "kv {kv_bits:?}");
        assert_eq!(b.stats.reused_tokens, a.stats.reused_tokens);
    }
}

#[test]
fn the_memory_budget_evicts_the_least_recently_used_cache_and_reloads_a_saved_one() {
    let _mlx = lock();
    let lm = model(2048);
    let dir = tempfile::tempdir().unwrap();
    let mut pool = ChatPool::new();
    let options = ChatOptions::default();
    let a = pool.insert(
        ChatSession::new(&lm, Some("A"), options.clone()).unwrap(),
        None,
    );
    let b = pool.insert(
        ChatSession::new(&lm, Some("B"), options.clone()).unwrap(),
        None,
    );
    let file = dir.path().join("a.safetensors");
    pool.set_file(a, file.clone());
    let turn = |pool: &mut ChatPool, id: u64, text: &str| {
        pool.turn(&lm, id, |s, _| {
            s.respond(&lm, text, &params(6), &mut quiet(), None)
        })
        .unwrap()
    };
    turn(&mut pool, a, "First.");
    let one = pool.nbytes();
    pool.set_memory_budget(Some(one + one / 2));
    let (_, evicted) = turn(&mut pool, b, "Second.");
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].id, a);
    assert!(
        evicted[0].saved.is_some(),
        "a saved conversation is written first"
    );
    assert!(pool.is_evicted(a) && file.is_file());
    assert!(pool.nbytes() <= one + one / 2);

    // A's next turn reloads its cache from the file: it reuses what a conversation that
    // never left memory reuses, and replies the same.
    let mut twin = ChatSession::new(&lm, Some("A"), options.clone()).unwrap();
    twin.respond(&lm, "First.", &params(6), &mut quiet(), None)
        .unwrap();
    let expected = twin
        .respond(&lm, "Third.", &params(6), &mut quiet(), None)
        .unwrap();
    let (g, evicted) = turn(&mut pool, a, "Third.");
    assert_eq!(g.tokens, expected.tokens);
    assert_eq!(g.stats.reused_tokens, expected.stats.reused_tokens);
    assert!(g.stats.reused_tokens > 15, "{:?}", g.stats);
    assert_eq!(evicted[0].id, b);
    assert!(evicted[0].saved.is_none());
    // B has no file: its history is processed again, with the same result.
    let mut alone = ChatSession::new(&lm, Some("B"), options).unwrap();
    for text in ["Second.", "Fourth."] {
        let expected = alone
            .respond(&lm, text, &params(6), &mut quiet(), None)
            .unwrap();
        if text == "Fourth." {
            let (g, _) = turn(&mut pool, b, text);
            assert_eq!(g.stats.reused_tokens, 0);
            assert_eq!(g.tokens, expected.tokens);
        }
    }
}
