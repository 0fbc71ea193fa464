//! Running the `adapt` binary from the CLI's integration tests.
// Each test file uses part of this module.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `adapt args…` with `stdin` as its input and `data` as its data directory.
pub fn run(args: &[&str], stdin: &str, data: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_adapt"))
        .args(args)
        .env_remove("ADAPT_MODEL")
        .env_remove("ADAPT_DEVICE")
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
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks that `out` is a clean failure with `code` (exit 1, no panic); returns its stderr.
pub fn expect_failure(out: &Output, code: &str) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains(&format!("[{code}]")), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    stderr
}

/// The steps of the complete checkpoints (with `state.json`) in a run folder, in order.
pub fn complete_checkpoints(run_dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("checkpoints")) else {
        return Vec::new();
    };
    let mut steps: Vec<u64> = entries
        .flatten()
        .filter(|e| e.path().join("state.json").exists())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("step-")?.parse().ok())
        .collect();
    steps.sort();
    steps
}
