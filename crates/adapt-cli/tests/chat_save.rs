//! A conversation saved with `/save` in one `adapt chat` continues in the next with `/open`,
//! without processing its history again; it stays saved (its cache written again on the way
//! out), and `/stats`, `/list`, `/fork`, `/system` and `/retry` work on it.

mod common;

use std::path::Path;

fn chat(data: &Path, input: &str) -> (String, String) {
    let model = adapt_testsupport::smollm2_gguf();
    let args = [
        "chat",
        "--max-tokens",
        "24",
        "--model",
        model.to_str().unwrap(),
    ];
    let out = common::run(&args, input, data);
    let stderr = common::text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    (common::text(&out.stdout), stderr)
}

#[test]
fn a_saved_conversation_continues_in_a_new_process_from_its_cache() {
    let data = tempfile::tempdir().unwrap();
    let (answer, stderr) = chat(data.path(), "What is the capital of France?\n/save trip\n");
    assert!(answer.contains("Paris"), "{answer}");
    assert!(
        stderr.contains("(saved 'trip': 2 messages, 44 cached tokens"),
        "{stderr}"
    );
    assert!(data.path().join("kv-caches/trip.safetensors").is_file());

    let (answer, stderr) = chat(data.path(), "/open trip\nAnd of Germany?\n/stats\n");
    assert!(answer.contains("Berlin"), "{answer}");
    assert!(
        stderr.contains("(opened 'trip': 2 messages, 44 cached tokens"),
        "{stderr}"
    );
    // The history comes from the file: only the new turn is processed, and the reply is the
    // one the same conversation gives in a single process.
    assert!(stderr.contains("(44 reused, 15 new)"), "{stderr}");
    let other = tempfile::tempdir().unwrap();
    let (both, _) = chat(
        other.path(),
        "What is the capital of France?\nAnd of Germany?\n",
    );
    assert!(both.ends_with(&answer), "{both:?} vs {answer:?}");
    assert!(
        stderr.contains("(conversation trip: 4 messages · cache "),
        "{stderr}"
    );
    // Leaving writes the cache again, with the new turn in it.
    let saved_again = stderr
        .lines()
        .find(|l| l.starts_with("(saved 'trip': 4 messages, "))
        .unwrap_or_else(|| panic!("no save on the way out: {stderr}"));
    let cached: usize = saved_again
        .split(", ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(cached > 59, "{saved_again}");

    let (answer, stderr) = chat(
        data.path(),
        "/open trip\n/list\n/retry\n/fork 1\nAnd of Italy?\n/system Answer in French.\n/stats\n",
    );
    assert!(
        stderr.contains(&format!(
            "(opened 'trip': 4 messages, {cached} cached tokens"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("  trip                   4 messages · "),
        "{stderr}"
    );
    // /retry replaces the last reply, prefilling one token.
    assert!(stderr.contains(" reused, 1 new)"), "{stderr}");
    assert!(answer.contains("Berlin"), "{answer}");
    // The fork keeps the first turn and its cache.
    assert!(
        stderr.contains("(forked at turn 1: 2 messages, 4"),
        "{stderr}"
    );
    assert!(answer.contains("Rome"), "{answer}");
    assert!(stderr.contains("(system message set)"), "{stderr}");
    assert!(
        stderr.contains("(conversation unsaved: 5 messages · cache"),
        "{stderr}"
    );

    let (_, stderr) = chat(
        data.path(),
        "/open nothing-here\n/open ../x\n/fork 9\n/bogus\n",
    );
    assert!(stderr.contains("[api.no_saved_chat]"), "{stderr}");
    assert!(stderr.contains("[api.bad_name]"), "{stderr}");
    assert!(stderr.contains("cannot fork at turn 9"), "{stderr}");
    assert!(stderr.contains("[cli.usage]"), "{stderr}");
}
