//! Conversations that keep topics: on a tiny random model with SmolLM2's tokenizer and chat
//! template, each topic's replies equal a fresh conversation holding only that topic's turns
//! (greedy, token for token), a moved message leaves both caches as a recomputation would,
//! edits, regeneration and forks stay within topics, save / reopen and eviction keep topics
//! and caches; on the real SmolLM2, routing puts clearly separated topics apart.

use std::sync::Mutex;

use adapt_engine::testing::{tiny_chat_model, tiny_llama_args};
use adapt_engine::{
    generate, load, prompt_tokens, ChatMessage, ChatOptions, ChatPool, ChatSession, GenerateParams,
    Generation, LoadOptions, LoadedModel, ModelArgs, SequenceCache, Tokenizer, TopicChoice,
    TopicSettings,
};

static MLX: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MLX.lock().unwrap_or_else(|e| e.into_inner())
}

fn tokenizer() -> Tokenizer {
    let gguf = adapt_gguf::GgufFile::open(adapt_testsupport::smollm2_gguf()).unwrap();
    Tokenizer::from_gguf(&gguf).unwrap()
}

fn tiny() -> LoadedModel {
    let args = ModelArgs {
        num_attention_heads: 2,
        num_key_value_heads: 1,
        head_dim: 32,
        rope_dims: 32,
        max_position_embeddings: 2048,
        ..tiny_llama_args()
    };
    tiny_chat_model(&args, 11, tokenizer(), "tiny-chat").unwrap()
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

fn topics_on(lm: &LoadedModel, system: &str) -> ChatSession {
    let mut s = ChatSession::new(lm, Some(system), ChatOptions::default()).unwrap();
    s.enable_topics(lm, TopicSettings::default()).unwrap();
    s
}

/// Sends `text` to topic `choice`.
fn say_in(s: &mut ChatSession, lm: &LoadedModel, text: &str, choice: TopicChoice) -> Generation {
    let routed = s.route(lm, text, choice).unwrap();
    s.respond_routed(lm, text, routed, &params(8), &mut quiet(), None)
        .unwrap()
}

/// The reply a fresh conversation holding `messages` and then `text` gets, turn by turn.
fn alone(lm: &LoadedModel, system: &str, texts: &[&str]) -> Vec<Vec<u32>> {
    let mut s = ChatSession::new(lm, Some(system), ChatOptions::default()).unwrap();
    texts
        .iter()
        .map(|t| {
            s.respond(lm, t, &params(8), &mut quiet(), None)
                .unwrap()
                .tokens
        })
        .collect()
}

/// The tokens of a finished conversation (no prompt for a reply).
fn history(lm: &LoadedModel, messages: &[ChatMessage]) -> Vec<u32> {
    let text = lm
        .chat_template
        .as_ref()
        .unwrap()
        .render_with(messages, false, &serde_json::Value::Null)
        .unwrap();
    lm.tokenizer.encode(&text, false).unwrap()
}

/// Largest difference between two caches' keys and values over their valid positions.
fn max_difference(a: &SequenceCache, b: &SequenceCache) -> f32 {
    assert_eq!(a.tokens, b.tokens);
    let mut worst = 0.0f32;
    for (x, y) in a.layers.iter().zip(&b.layers) {
        let ((xk, xv), (yk, yv)) = (x.parts().unwrap(), y.parts().unwrap());
        for (p, q) in xk.iter().chain(&xv).zip(yk.iter().chain(&yv)) {
            let d = p.subtract(q).unwrap().abs().unwrap().max(None).unwrap();
            worst = worst.max(d.item_cast::<f32>());
        }
    }
    worst
}

const SYSTEM: &str = "Be brief.";
const BREAD: [&str; 3] = [
    "My sourdough starter smells sharp.",
    "How long should the dough proof?",
    "Which flour is best for a crust?",
];
const BIKE: [&str; 2] = [
    "My chain slips on the small cog.",
    "When do brake pads wear out?",
];

#[test]
fn each_topic_replies_as_a_conversation_of_its_own_turns() {
    let _mlx = lock();
    let lm = tiny();
    let mut s = topics_on(&lm, SYSTEM);
    let bread = alone(&lm, SYSTEM, &BREAD);
    let bike = alone(&lm, SYSTEM, &BIKE);
    // Interleaved: bread, bike, bread, bike, bread.
    let a = say_in(&mut s, &lm, BREAD[0], TopicChoice::New);
    let b = say_in(&mut s, &lm, BIKE[0], TopicChoice::New);
    let c = say_in(&mut s, &lm, BREAD[1], TopicChoice::Topic(1));
    let d = say_in(&mut s, &lm, BIKE[1], TopicChoice::Topic(2));
    let e = say_in(&mut s, &lm, BREAD[2], TopicChoice::Topic(1));
    assert_eq!([a.tokens, c.tokens, e.tokens.clone()], bread.as_slice());
    assert_eq!([b.tokens, d.tokens], bike.as_slice());
    // Only the new message is prefilled in its topic's cache.
    assert!(e.stats.reused_tokens > 40, "{:?}", e.stats);
    let topics = s.topics.as_ref().unwrap();
    assert_eq!(topics.topics.len(), 2);
    assert_eq!(topics.turns(1, &s.messages), 3);
    assert_eq!(topics.turns(2, &s.messages), 2);
    assert_eq!(s.messages.len(), 11);
    assert_eq!(s.turns(), 5);
    assert_eq!(
        topics.of,
        [None, Some(1), Some(1), Some(2), Some(2), Some(1), Some(1)]
            .into_iter()
            .chain([Some(2), Some(2), Some(1), Some(1)])
            .collect::<Vec<_>>()
    );
    assert!(
        s.cache.tokens.is_empty(),
        "the conversation's own cache stays empty"
    );
    assert_eq!(
        s.cached_tokens(),
        topics
            .topics
            .iter()
            .map(|t| t.cache.tokens.len())
            .sum::<usize>()
    );

    // Regeneration replays the last topic's last turn; an edit stays in its topic.
    let r = s.regenerate(&lm, &params(8), &mut quiet()).unwrap();
    assert_eq!(r.tokens, bread[2]);
    let edited = s.edit(&lm, 3, BIKE[0], &params(8), &mut quiet()).unwrap();
    assert_eq!(edited.tokens, bike[0]);
    let topics = s.topics.as_ref().unwrap();
    assert_eq!(topics.of.len(), 5);
    assert_eq!(topics.topics.len(), 2);
    assert_eq!(s.topic_messages(1).len(), 3);
}

#[test]
fn a_moved_message_leaves_both_caches_as_a_recomputation_would() {
    let _mlx = lock();
    let lm = tiny();
    let mut s = topics_on(&lm, SYSTEM);
    say_in(&mut s, &lm, BREAD[0], TopicChoice::New);
    say_in(&mut s, &lm, BIKE[0], TopicChoice::New);
    // A bike question that went to the bread topic by mistake, then one more bread turn.
    say_in(&mut s, &lm, BIKE[1], TopicChoice::Topic(1));
    say_in(&mut s, &lm, BREAD[1], TopicChoice::Topic(1));
    s.move_message(&lm, 5, TopicChoice::Topic(2)).unwrap();
    let topics = s.topics.as_ref().unwrap();
    assert_eq!(topics.turns(1, &s.messages), 2);
    assert_eq!(topics.turns(2, &s.messages), 2);
    for id in [1, 2] {
        let messages = s.topic_messages(id);
        let expected = history(&lm, &messages);
        let mut fresh = SequenceCache::new(&lm.model);
        adapt_engine::generate::prefill_to(&lm.model, &mut fresh, &expected, 2048).unwrap();
        let cache = &s.topics.as_ref().unwrap().get(id).unwrap().cache;
        assert_eq!(cache.tokens, expected, "topic {id}");
        let d = max_difference(cache, &fresh);
        assert!(d < 1e-4, "topic {id}: keys and values differ by {d}");
    }
    // The next bike turn replies as a conversation of the bike turns alone.
    let next = say_in(&mut s, &lm, "And the tyres?", TopicChoice::Topic(2));
    let messages = s.topic_messages(2);
    let mut cache = SequenceCache::new(&lm.model);
    let prompt = prompt_tokens(&lm, &messages[..messages.len() - 1]).unwrap();
    let expected = generate(
        &lm.model,
        &lm.tokenizer,
        &mut cache,
        &prompt,
        &params(8),
        &mut quiet(),
    )
    .unwrap();
    assert_eq!(next.tokens, expected.tokens);

    // To a new topic; the emptied topic goes.
    s.move_message(&lm, 1, TopicChoice::New).unwrap();
    let topics = s.topics.as_ref().unwrap();
    assert_eq!(
        topics.topics.iter().map(|t| t.id).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    s.move_message(&lm, 7, TopicChoice::Topic(3)).unwrap();
    let ids: Vec<u32> = s
        .topics
        .as_ref()
        .unwrap()
        .topics
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, [2, 3], "topic 1 lost its last message");
    let bad = s.move_message(&lm, 2, TopicChoice::Topic(2)).unwrap_err();
    assert!(bad.to_string().contains("not a user message"), "{bad}");
    let bad = s.move_message(&lm, 1, TopicChoice::Topic(9)).unwrap_err();
    assert!(bad.to_string().contains("no topic 9"), "{bad}");
}

#[test]
fn saved_topics_reopen_with_their_caches_and_survive_eviction() {
    let _mlx = lock();
    let lm = tiny();
    let dir = tempfile::tempdir().unwrap();
    let mut s = topics_on(&lm, SYSTEM);
    say_in(&mut s, &lm, BREAD[0], TopicChoice::New);
    say_in(&mut s, &lm, BIKE[0], TopicChoice::New);
    say_in(&mut s, &lm, BREAD[1], TopicChoice::Topic(1));
    let path = dir.path().join("t.safetensors");
    s.save(&lm, &path).unwrap();
    let mut reopened = ChatSession::open(&lm, &path).unwrap();
    let (a, b) = (
        s.topics.as_ref().unwrap(),
        reopened.topics.as_ref().unwrap(),
    );
    assert_eq!(a.of, b.of);
    assert_eq!(a.settings, b.settings);
    for (x, y) in a.topics.iter().zip(&b.topics) {
        assert_eq!((x.id, &x.name), (y.id, &y.name));
        assert_eq!(x.cache.tokens, y.cache.tokens);
        assert!(max_difference(&x.cache, &y.cache) == 0.0);
    }
    let one = say_in(&mut s, &lm, BIKE[1], TopicChoice::Topic(2));
    let two = say_in(&mut reopened, &lm, BIKE[1], TopicChoice::Topic(2));
    assert_eq!(one.tokens, two.tokens);
    assert_eq!(one.stats.reused_tokens, two.stats.reused_tokens);
    // Routing reads the same similarities after reopening.
    let r1 = s.route(&lm, BREAD[2], TopicChoice::Auto).unwrap().routing;
    let r2 = reopened
        .route(&lm, BREAD[2], TopicChoice::Auto)
        .unwrap()
        .routing;
    assert_eq!(r1, r2);

    // In a pool within a small budget, a saved conversation with topics leaves memory
    // (written to its file) and comes back with every topic's cache.
    let mut pool = ChatPool::new();
    let file = dir.path().join("pooled.safetensors");
    let id = pool.insert(reopened, Some(file.clone()));
    let other = pool.insert(topics_on(&lm, "Other."), None);
    pool.set_memory_budget(Some(1));
    let (_, evicted) = pool
        .turn(&lm, other, |s, _| {
            s.respond(&lm, "Hello there.", &params(4), &mut quiet(), None)
        })
        .unwrap();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].id, id);
    assert!(file.is_file());
    assert_eq!(pool.get(id).unwrap().cached_tokens(), 0);
    let session = pool.session(&lm, id).unwrap();
    assert!(session.cached_tokens() > 100);
    let three = say_in(session, &lm, BREAD[2], TopicChoice::Topic(1));
    let four = say_in(&mut s, &lm, BREAD[2], TopicChoice::Topic(1));
    assert_eq!(three.tokens, four.tokens);
    assert_eq!(three.stats.reused_tokens, four.stats.reused_tokens);
}

#[test]
fn topics_turn_on_over_a_conversation_and_off_again_and_forks_keep_them() {
    let _mlx = lock();
    let lm = tiny();
    let mut s = ChatSession::new(&lm, Some(SYSTEM), ChatOptions::default()).unwrap();
    s.respond(&lm, BREAD[0], &params(8), &mut quiet(), None)
        .unwrap();
    let held = s.cache.tokens.clone();
    s.enable_topics(&lm, TopicSettings::default()).unwrap();
    let topics = s.topics.as_ref().unwrap();
    assert_eq!(topics.topics.len(), 1);
    assert_eq!(
        topics.topics[0].cache.tokens, held,
        "the cache carries over"
    );
    say_in(&mut s, &lm, BIKE[0], TopicChoice::New);
    say_in(&mut s, &lm, BREAD[1], TopicChoice::Topic(1));
    let fork = s.fork(&lm, 2).unwrap();
    let ft = fork.topics.as_ref().unwrap();
    assert_eq!(fork.messages.len(), 5);
    assert_eq!(ft.topics.len(), 2);
    assert_eq!(ft.turns(1, &fork.messages), 1);
    let bad = TopicSettings {
        threshold: 2.0,
        ..TopicSettings::default()
    };
    assert!(s.enable_topics(&lm, bad).is_err());
    s.disable_topics();
    assert!(s.topics.is_none());
    assert_eq!(s.messages.len(), 7);
    // Off again: one thread of every turn in order, from the first topic's cache.
    let g = s
        .respond(&lm, BIKE[1], &params(8), &mut quiet(), None)
        .unwrap();
    let first_topic = history(&lm, &s.messages[..3]);
    assert!(
        g.stats.reused_tokens >= first_topic.len() - 3,
        "{:?}",
        g.stats
    );
    assert_eq!(s.turns(), 4);
}

/// The real model, for routing by meaning.
#[test]
fn routing_puts_clearly_separated_topics_apart_on_smollm2() {
    let _mlx = lock();
    let lm = load(&adapt_testsupport::smollm2_gguf(), &LoadOptions::default()).unwrap();
    let mut s = topics_on(&lm, "You are a helpful assistant.");
    let messages = [
        (
            "bread",
            "My sourdough starter smells like nail polish. Should I feed it more often?",
        ),
        ("bike", "My bike chain keeps slipping on the smallest cog."),
        (
            "bread",
            "How long should I proof the dough in the fridge overnight?",
        ),
        (
            "bike",
            "How often should I replace the brake pads on a road bike?",
        ),
        ("bread", "What flour gives the crustiest loaf of bread?"),
    ];
    let mut topic_of = std::collections::HashMap::new();
    for (label, text) in messages {
        let routed = s.route(&lm, text, TopicChoice::Auto).unwrap();
        let r = routed.routing.clone();
        let expected = *topic_of.entry(label).or_insert(r.topic);
        assert_eq!(r.topic, expected, "{text}: {r:?}");
        assert_eq!(
            r.opened,
            topic_of.len() > s.topics.as_ref().unwrap().topics.len()
        );
        s.respond_routed(&lm, text, routed, &params(2), &mut quiet(), None)
            .unwrap();
    }
    assert_eq!(s.topics.as_ref().unwrap().topics.len(), 2);
}

#[test]
fn messages_the_file_lacks_join_the_last_topic_and_a_different_history_turns_topics_off() {
    let _mlx = lock();
    let lm = tiny();
    let dir = tempfile::tempdir().unwrap();
    let mut s = topics_on(&lm, SYSTEM);
    say_in(&mut s, &lm, BREAD[0], TopicChoice::New);
    say_in(&mut s, &lm, BIKE[0], TopicChoice::New);
    let path = dir.path().join("t.safetensors");
    s.save(&lm, &path).unwrap();
    // The store went on after the file was written (a crash before the next save).
    say_in(&mut s, &lm, BIKE[1], TopicChoice::Topic(2));
    let mut reopened = ChatSession::open(&lm, &path).unwrap();
    reopened.replace_messages(s.messages.clone());
    let topics = reopened.topics.as_ref().unwrap();
    assert_eq!(topics.of, s.topics.as_ref().unwrap().of);
    assert_eq!(topics.turns(2, &reopened.messages), 2);
    // The next bike turn reuses what the file held and prefills the rest.
    let g = say_in(&mut reopened, &lm, "And the tyres?", TopicChoice::Topic(2));
    let h = say_in(&mut s, &lm, "And the tyres?", TopicChoice::Topic(2));
    assert_eq!(g.tokens, h.tokens);
    // A history that is not the file's: topics go, the messages stay.
    let mut other = ChatSession::open(&lm, &path).unwrap();
    let mut changed = s.messages.clone();
    changed[1] = ChatMessage::new("user", "Something else.");
    other.replace_messages(changed.clone());
    assert!(other.topics.is_none());
    assert_eq!(other.messages, changed);
}
