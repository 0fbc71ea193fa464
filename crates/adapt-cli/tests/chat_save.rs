//! A conversation saved with `/save` in one `adapt chat` continues in the next with `/open`,
//! without processing its history again.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn chat(data: &Path, input: &str) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_adapt"))
        .args(["chat", "--max-tokens", "24", "--model"])
        .arg(adapt_testsupport::smollm2_gguf())
        .env_remove("ADAPT_MODEL")
        .env("ADAPT_DATA_DIR", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("adapt starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
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
