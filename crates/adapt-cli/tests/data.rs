//! `adapt data` end to end: inspect a real-looking CSV and chat JSONL with the real SmolLM2
//! tokenizer, refuse a broken file with a code and the line, and prepare twice (the second
//! time from the cache).

use std::path::Path;
use std::process::{Command, Output};

use adapt_testsupport::smollm2_gguf as smollm2;

fn adapt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adapt"))
        .args(args)
        .env_remove("ADAPT_MODEL")
        .env_remove("ADAPT_DATA_CACHE")
        .output()
        .expect("adapt starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

const TITANIC: &str = "PassengerId,Survived,Pclass,Name,Sex,Age\r\n\
1,0,3,\"Braund, Mr. Owen Harris\",male,22\r\n\
2,1,1,\"Cumings, Mrs. John Bradley\",female,38\r\n\
3,1,3,\"Heikkinen, Miss. Laina\",female,26\r\n\
4,0,3,\"Allen, Mr. William Henry\",male,\r\n\
5,0,3,\"Moran, Mr. James\",male,14\r\n";

#[test]
fn inspect_a_csv_shows_the_mapping_stats_and_marked_examples() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "titanic.csv", TITANIC);
    let model = smollm2();
    let out = adapt(&[
        "data", "inspect", &csv, "--model", model.to_str().unwrap(),
        "--prompt-template",
        "Passenger: {{ Pclass }} class, {{ 'child' if Age and Age|float < 18 else 'adult' }}, {{ 'man' if Sex == 'male' else 'woman' }}. Did they survive?",
        "--completion-template", "{{ 'yes' if Survived == '1' else 'no' }}",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("format      completions, from CSV"),
        "{stdout}"
    );
    assert!(
        stdout.contains("examples    5 valid, 0 invalid, 0 duplicates"),
        "{stdout}"
    );
    assert!(stdout.contains("p50"), "{stdout}");
    assert!(
        stdout.contains("<|im_start|>user\nPassenger: 3 class, adult, man. Did they survive?<|im_end|>\n<|im_start|>assistant\n«no<|im_end|>»"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("example at line").count(), 3, "{stdout}");
}

#[test]
fn inspect_a_chat_jsonl_reports_errors_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write(
        dir.path(),
        "chat.jsonl",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}, {\"role\": \"user\", \"content\": \"Bye\"}, {\"role\": \"assistant\", \"content\": \"Bye!\"}]}\n\
         {\"messages\": [{\"role\": \"robot\", \"content\": \"Beep\"}]}\n",
    );
    let out = adapt(&[
        "data",
        "inspect",
        &jsonl,
        "--model",
        smollm2().to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("format      chat (JSONL)"), "{stdout}");
    assert!(
        stdout.contains("examples    1 valid, 1 invalid"),
        "{stdout}"
    );
    assert!(
        stdout.contains("error [data.unknown_role] ")
            && stdout.contains("chat.jsonl:2, field 'messages[0].role': unknown role 'robot'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("«Hello!<|im_end|>»") && stdout.contains("«Bye!<|im_end|>»"),
        "{stdout}"
    );
}

#[test]
fn prepare_refuses_invalid_data_then_reuses_its_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let model = smollm2();
    let model = model.to_str().unwrap();
    let bad = write(
        dir.path(),
        "bad.csv",
        "prompt,completion\nHi,Hello\nonly one field\n",
    );
    let out = adapt(&[
        "data",
        "prepare",
        "--train",
        &bad,
        "--model",
        model,
        "--cache-dir",
        cache,
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error [data.invalid]"), "{stderr}");
    assert!(
        stderr.contains("bad.csv:3 (record 2): 1 fields but the header has 2"),
        "{stderr}"
    );

    let csv = write(dir.path(), "titanic.csv", TITANIC);
    let args = [
        "data",
        "prepare",
        "--train",
        &csv,
        "--model",
        model,
        "--cache-dir",
        cache,
        "--completion-column",
        "Survived",
        "--valid-ratio",
        "0",
    ];
    let first = adapt(&args);
    let stdout = text(&first.stdout);
    assert!(first.status.success(), "{stdout}{}", text(&first.stderr));
    assert!(stdout.starts_with("prepared in "), "{stdout}");
    assert!(stdout.contains("train        5 examples"), "{stdout}");
    let again = adapt(&args);
    assert!(
        text(&again.stdout).starts_with("reused the cache in "),
        "{}",
        text(&again.stdout)
    );
}
