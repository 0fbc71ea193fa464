//! Conversations through the API with SmolLM2: caches within the memory budget (the least
//! recently used leaves memory and comes back from its file) and the disk budget (the least
//! recently used file goes; its conversation still opens and processes its history again);
//! an edit trims the cache to the prefix still valid; quitting writes the saved ones' caches.

use adapt_api::{Adapt, AdaptConfig, GenerateParams, SamplingParams};

fn params() -> GenerateParams {
    GenerateParams {
        max_tokens: 8,
        sampling: SamplingParams::default(),
        ..GenerateParams::default()
    }
}

#[test]
fn caches_stay_within_their_budgets_and_evicted_conversations_continue() {
    let dir = tempfile::tempdir().unwrap();
    let adapt = Adapt::start_with(AdaptConfig {
        data_dir: Some(dir.path().join("data")),
        ..AdaptConfig::default()
    })
    .unwrap();
    adapt
        .load_model(&adapt_testsupport::smollm2_gguf())
        .unwrap();
    let quiet = |_| true;

    // Memory: room for about one conversation's cache.
    let a = adapt.new_chat(Some("You are terse.")).unwrap();
    adapt.chat(a, "Name a color.", &params(), quiet).unwrap();
    adapt.save_chat(a, "colors").unwrap();
    let one = adapt.chat_state(a).unwrap().cache_bytes;
    adapt.set_cache_budgets(Some(one + one / 2), None).unwrap();
    let b = adapt.new_chat(Some("You are kind.")).unwrap();
    adapt.chat(b, "Name a fruit.", &params(), quiet).unwrap();
    let state = adapt.chat_state(a).unwrap();
    assert!(state.evicted && state.cached_tokens == 0, "{state:?}");
    assert!(state.all_caches_bytes <= one + one / 2);
    // A comes back from its file: only the new message is processed.
    let g = adapt.chat(a, "Another one.", &params(), quiet).unwrap();
    assert!(g.stats.reused_tokens > 20, "{:?}", g.stats);
    assert!(adapt.chat_state(b).unwrap().evicted);

    // An edit of the first user message keeps the opening only.
    let before = adapt.chat_state(a).unwrap();
    assert_eq!(before.messages.len(), 5);
    let g = adapt
        .edit_message(a, 1, "Name a number.", &params(), quiet)
        .unwrap();
    assert_eq!(adapt.chat_state(a).unwrap().messages.len(), 3);
    assert!(
        g.stats.reused_tokens > 10 && g.stats.reused_tokens < 40,
        "{:?}",
        g.stats
    );

    // Disk: one byte, so saving another conversation removes the older file.
    adapt.set_cache_budgets(None, Some(1)).unwrap();
    // B's cache left memory and had no file: its history is processed again (all but the
    // shared opening), then saved.
    let g = adapt.chat(b, "Another one.", &params(), quiet).unwrap();
    assert!(
        g.stats.reused_tokens < 20 && g.stats.prefilled_tokens > 20,
        "{:?}",
        g.stats
    );
    adapt.save_chat(b, "fruits").unwrap();
    assert!(!dir
        .path()
        .join("data/kv-caches/colors.safetensors")
        .exists());
    assert!(dir
        .path()
        .join("data/kv-caches/fruits.safetensors")
        .exists());
    let listed = adapt.list_chats().unwrap();
    let colors = listed.iter().find(|c| c.name == "colors").unwrap();
    assert_eq!((colors.messages, colors.cache), (3, None));
    adapt.close_chat(a).unwrap();
    let (reopened, saved) = adapt.open_chat("colors").unwrap();
    assert_eq!((saved.messages, saved.cached_tokens), (3, 0));
    assert!(saved.note.unwrap().contains("disk budget"));
    let g = adapt
        .chat(reopened, "And a letter?", &params(), quiet)
        .unwrap();
    assert!(
        g.stats.reused_tokens < 20 && g.stats.prefilled_tokens > 20,
        "{:?}",
        g.stats
    );

    // Quitting writes the caches of saved conversations still in memory ("fruits" left memory
    // for the budget, and was written then).
    assert!(adapt.chat_state(b).unwrap().evicted);
    let written = adapt.close_all_chats().unwrap();
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].path.ends_with("colors.safetensors") && written[0].cached_tokens > 20);
    // The 1-byte disk budget keeps only the file just written.
    assert!(!dir
        .path()
        .join("data/kv-caches/fruits.safetensors")
        .exists());
    assert!(adapt.chat_state(reopened).is_err() && adapt.chat_state(b).is_err());
    let (_, saved) = adapt.open_chat("colors").unwrap();
    assert_eq!(saved.cached_tokens, written[0].cached_tokens);
}
