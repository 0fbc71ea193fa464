//! The page and the shell agree on the commands: every `#[tauri::command]` in `commands.rs`
//! is registered in `main.rs` and invoked by `ui/src/lib/backend.ts` (except those listed as
//! awaiting the page), and the page invokes no other command.

use std::collections::BTreeSet;

fn read(path: &str) -> String {
    // Read when the test runs (not `env!`): right even in a build folder shared by checkouts.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test");
    let root = std::path::Path::new(&dir);
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// Names of the functions that follow `#[tauri::command]`.
fn commands(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut marked = false;
    for line in source.lines().map(str::trim) {
        if line == "#[tauri::command]" {
            marked = true;
        } else if marked && line.starts_with("pub ") {
            let after = line.split("fn ").nth(1).unwrap();
            names.insert(after.split('(').next().unwrap().to_string());
            marked = false;
        }
    }
    names
}

/// The command names `text` passes to `invoke`/`invoke<…>`.
fn invoked(text: &str) -> BTreeSet<String> {
    text.split("invoke")
        .skip(1)
        .filter_map(|rest| {
            let start = rest.find("(\"")?;
            let rest = &rest[start + 2..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

/// Commands the backend offers that the page does not call yet. When the page calls one,
/// the test fails until it leaves this list.
const AWAITING_THE_PAGE: &[&str] = &[];

#[test]
fn every_command_is_registered_and_used_by_the_page() {
    let defined = commands(&read("src/commands.rs"));
    assert!(defined.len() >= 10, "{defined:?}");
    let main = read("src/main.rs");
    for name in &defined {
        assert!(
            main.contains(&format!("commands::{name},")),
            "{name} is not registered in main.rs"
        );
    }
    let used = invoked(&read("../ui/src/lib/backend.ts"));
    for name in AWAITING_THE_PAGE {
        assert!(defined.contains(*name), "{name} is not a command");
        assert!(
            !used.contains(*name),
            "the page calls {name}: take it off the list"
        );
    }
    let offered: BTreeSet<String> = defined
        .into_iter()
        .filter(|c| !AWAITING_THE_PAGE.contains(&c.as_str()))
        .collect();
    assert_eq!(
        offered, used,
        "commands.rs and ui/src/lib/backend.ts disagree"
    );
}
