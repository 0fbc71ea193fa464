//! A conversation saved with `/save` in one `adapt chat` continues in the next with `/open`,
//! without processing its history again.

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

    let (answer, stderr) = chat(data.path(), "/open trip\nAnd of Germany?\n");
    assert!(answer.contains("Berlin"), "{answer}");
    assert!(
        stderr.contains("(opened 'trip': 2 messages, 44 cached tokens"),
        "{stderr}"
    );
    // The history comes from the file: only the new turn is processed.
    assert!(stderr.contains("(44 reused, 15 new)"), "{stderr}");

    let (_, stderr) = chat(data.path(), "/open nothing-here\n/open ../x\n");
    assert!(stderr.contains("[api.no_saved_chat]"), "{stderr}");
    assert!(stderr.contains("[api.bad_name]"), "{stderr}");
}
