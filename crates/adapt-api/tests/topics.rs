//! Topics through the API with SmolLM2: turned on, each message's topic comes first in its
//! stream (picked or routed, with the similarities), the state lists the topics with their
//! turns and caches, a moved message changes both, and a conversation saved by name reopens
//! with its topics and caches (its next turn prefills only the new message).

use adapt_api::{
    Adapt, AdaptConfig, GenerateParams, GenerationEvent, Routing, SamplingParams, TopicChoice,
    TopicSettings,
};

fn params() -> GenerateParams {
    GenerateParams {
        max_tokens: 4,
        sampling: SamplingParams::default(),
        ..GenerateParams::default()
    }
}

/// Sends `text` and returns where it went.
fn send(adapt: &Adapt, chat: adapt_api::ChatId, text: &str, choice: TopicChoice) -> Routing {
    let mut routed = Vec::new();
    let mut first = None;
    adapt
        .chat_in(chat, text, choice, &params(), |e| {
            first.get_or_insert(matches!(e, GenerationEvent::Routed(_)));
            if let GenerationEvent::Routed(r) = e {
                routed.push(r);
            }
            true
        })
        .unwrap();
    assert_eq!(first, Some(true), "the routing comes first");
    assert_eq!(routed.len(), 1);
    routed.remove(0)
}

#[test]
fn topics_route_move_save_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let adapt = Adapt::start_with(AdaptConfig {
        data_dir: Some(dir.path().join("data")),
        ..AdaptConfig::default()
    })
    .unwrap();
    adapt
        .load_model(&adapt_testsupport::smollm2_gguf())
        .unwrap();
    let chat = adapt.new_chat(Some("You are helpful.")).unwrap();
    let bad = adapt
        .chat_in(chat, "Hi", TopicChoice::New, &params(), |_| true)
        .unwrap_err();
    assert!(bad.message.contains("turn them on"), "{bad:?}");
    let state = adapt
        .set_topics(chat, Some(TopicSettings::default()))
        .unwrap();
    assert_eq!(state.topics.as_ref().unwrap().topics.len(), 0);

    let r = send(
        &adapt,
        chat,
        "My sourdough starter smells like nail polish. Should I feed it more often?",
        TopicChoice::Auto,
    );
    assert!(r.opened && !r.picked && r.topic == 1 && r.similarities.is_empty());
    let r = send(
        &adapt,
        chat,
        "My bike chain keeps slipping on the smallest cog.",
        TopicChoice::Auto,
    );
    assert!(r.opened && r.topic == 2, "{r:?}");
    assert!(r.similarities[0].similarity < r.threshold, "{r:?}");
    let r = send(
        &adapt,
        chat,
        "How long should I proof the dough in the fridge overnight?",
        TopicChoice::Auto,
    );
    assert!(!r.opened && r.topic == 1, "{r:?}");
    assert_eq!(r.similarities.len(), 2);
    assert!(r.similarities[0].similarity >= r.similarities[1].similarity);
    let r = send(
        &adapt,
        chat,
        "And the tyre pressure?",
        TopicChoice::Topic(2),
    );
    assert!(r.picked && !r.opened && r.topic == 2);

    let state = adapt.chat_state(chat).unwrap();
    let view = state.topics.clone().unwrap();
    let turns: Vec<(u32, usize)> = view.topics.iter().map(|t| (t.id, t.turns)).collect();
    assert_eq!(turns, [(1, 2), (2, 2)]);
    assert_eq!(view.message_topics.len(), state.messages.len());
    assert_eq!(view.message_topics[0], None);
    assert_eq!(
        state.cached_tokens,
        view.topics.iter().map(|t| t.cache_tokens).sum::<usize>()
    );

    // Message 5 (the dough question) moves to the bike topic: both caches change.
    let moved = adapt.move_message(chat, 5, TopicChoice::Topic(2)).unwrap();
    let after = moved.topics.unwrap();
    let turns: Vec<(u32, usize)> = after.topics.iter().map(|t| (t.id, t.turns)).collect();
    assert_eq!(turns, [(1, 1), (2, 3)]);
    assert!(after.topics[0].cache_tokens < view.topics[0].cache_tokens);
    assert!(after.topics[1].cache_tokens > view.topics[1].cache_tokens);
    let bad = adapt.move_message(chat, 2, TopicChoice::New).unwrap_err();
    assert!(bad.message.contains("not a user message"), "{bad:?}");

    // Saved, closed and reopened: the same topics, and the next turn reuses the topic's cache.
    adapt.save_chat(chat, "topics").unwrap();
    adapt.close_chat(chat).unwrap();
    let (reopened, saved) = adapt.open_chat("topics").unwrap();
    assert!(saved.note.is_none(), "{saved:?}");
    let state = adapt.chat_state(reopened).unwrap();
    let view = state.topics.unwrap();
    assert_eq!(view.message_topics, after.message_topics);
    let described = |v: &adapt_api::TopicsView| -> Vec<(u32, String, usize, usize)> {
        v.topics
            .iter()
            .map(|t| (t.id, t.name.clone(), t.turns, t.cache_tokens))
            .collect()
    };
    assert_eq!(described(&view), described(&after));
    let mut reused = 0;
    adapt
        .chat_in(
            reopened,
            "What about chain oil?",
            TopicChoice::Topic(2),
            &params(),
            |_| true,
        )
        .map(|g| reused = g.stats.reused_tokens)
        .unwrap();
    assert!(reused >= after.topics[1].cache_tokens - 3, "{reused}");

    // Off: one thread again, every message kept.
    let state = adapt.set_topics(reopened, None).unwrap();
    assert!(state.topics.is_none());
    assert_eq!(state.messages.len(), 11);
}
