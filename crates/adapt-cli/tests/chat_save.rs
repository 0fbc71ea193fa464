//! A conversation saved with `/save` in one `adapt chat` continues in the next with `/open`,
//! without processing its history again; it stays saved (its cache written again on the way
//! out), and `/stats`, `/list`, `/fork`, `/system` and `/retry` work on it. Killed ten times
//! while it replies and saves, or with its disk full, a conversation opens with its own cache
//! or none, never a wrong one.

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

/// Copies the data folder `from` (store and caches, no process running) to `to`.
fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The reply to `/open NAME` then `question` with the conversation's cache, and the reply to
/// the same with every cache file removed first (the history processed again): a conversation
/// and its cache are consistent when the two agree.
fn replies_with_and_without_cache(data: &Path, name: &str, question: &str) -> (String, String) {
    let input = format!("/open {name}\n{question}\n");
    let bare = tempfile::tempdir().unwrap();
    copy_folder(data, bare.path());
    for file in std::fs::read_dir(bare.path().join("kv-caches"))
        .unwrap()
        .flatten()
    {
        if file.path().is_file() {
            std::fs::remove_file(file.path()).unwrap();
        }
    }
    let (without, _) = chat(bare.path(), &input);
    let (with, _) = chat(data, &input);
    (with, without)
}

#[test]
fn a_conversation_killed_ten_times_while_it_saves_opens_with_its_own_cache_or_none() {
    let test = "a_conversation_killed_ten_times_while_it_saves_opens_with_its_own_cache_or_none";
    if !adapt_testsupport::slow_tests(test) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    chat(data.path(), "What is the capital of France?\n/save storm\n");
    let model = adapt_testsupport::smollm2_gguf();
    let questions = [
        "And of Germany?",
        "And of Italy?",
        "And of Spain?",
        "And of Peru?",
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for kill in 0..10 {
        // A turn, a save, another turn: the process is killed (SIGKILL) at a pseudo-random
        // moment, during a reply, a save or the save on the way out.
        let input = format!(
            "/open storm\n{}\n/save storm\n{}\n",
            questions[kill % 4],
            questions[(kill + 1) % 4]
        );
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_adapt"))
            .args([
                "chat",
                "--max-tokens",
                "24",
                "--model",
                model.to_str().unwrap(),
            ])
            .env_remove("ADAPT_MODEL")
            .env("ADAPT_DATA_DIR", data.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(std::time::Duration::from_millis(300 + state % 2500));
        let _ = child.kill();
        child.wait().unwrap();
    }
    // The conversation opens, and its cache (if it is used) gives exactly what processing
    // the history again gives: never a wrong cache.
    let (with, without) = replies_with_and_without_cache(data.path(), "storm", "And of Chile?");
    assert!(!with.is_empty());
    assert_eq!(with, without);
}

#[test]
fn a_disk_that_fills_during_a_chat_save_is_named_and_the_last_save_still_opens() {
    let test = "a_disk_that_fills_during_a_chat_save_is_named_and_the_last_save_still_opens";
    if !adapt_testsupport::slow_tests(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(disk) = adapt_testsupport::SmallDisk::mount(test, &data, 64 << 20) else {
        return;
    };
    chat(&data, "What is the capital of France?\n/save trip\n");
    let filler = disk.fill();
    let model = adapt_testsupport::smollm2_gguf();
    let args = [
        "chat",
        "--max-tokens",
        "24",
        "--model",
        model.to_str().unwrap(),
    ];
    let out = common::run(&args, "/open trip\nAnd of Germany?\n/save other\n", &data);
    let stderr = common::text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("No space left on device") || stderr.contains("disk may be full"),
        "the error names the full disk: {stderr}"
    );
    std::fs::remove_file(filler).unwrap();
    let (with, without) = replies_with_and_without_cache(&data, "trip", "And of Italy?");
    assert!(with.contains("Rome"), "{with}");
    assert_eq!(with, without);
}
