//! The malformed-input corpus: every file in `tests/corpus/` (with optional import options in
//! `NAME.options.json`) is scanned, and what is reported — the fatal error, or each listed
//! error and warning — must equal `NAME.expected` exactly. Set `ADAPT_BLESS=1` to rewrite the
//! expected files after a deliberate change (then review the diff).

use std::path::{Path, PathBuf};

use adapt_data::{scan, DataOptions, ImportOptions};

fn corpus_dir() -> PathBuf {
    adapt_testsupport::manifest_dir().join("tests/corpus")
}

/// Everything scanning `file` reports, one `[code] message` per line.
fn report(file: &Path) -> String {
    let stem = file.file_stem().unwrap().to_str().unwrap();
    let options = file.with_file_name(format!("{stem}.options.json"));
    let mut import: ImportOptions = match std::fs::read_to_string(&options) {
        Ok(text) => serde_json::from_str(&text).expect("valid options file"),
        Err(_) => ImportOptions::default(),
    };
    import.max_line_bytes = 1024;
    let opts = DataOptions {
        import,
        ..DataOptions::default()
    };
    // Paths in messages are relative to the crate, so expected files are machine-independent.
    let rel = Path::new("tests/corpus").join(file.file_name().unwrap());
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        cwd,
        adapt_testsupport::manifest_dir(),
        "tests run in the crate dir"
    );
    match scan(&rel, &opts, None, |_, _| Ok(()), &mut |_| {}) {
        Err(e) => format!("fatal [{}] {e}\n", e.code()),
        Ok(r) => {
            let mut out = format!(
                "examples {} invalid {} duplicates {}\n",
                r.examples, r.invalid, r.duplicates
            );
            for e in &r.errors {
                out.push_str(&format!("error [{}] {}\n", e.code, e.message));
            }
            for w in &r.warnings {
                out.push_str(&format!("warning [{}] {}\n", w.code, w.message));
            }
            out
        }
    }
}

#[test]
fn every_malformed_file_reports_its_exact_error() {
    let bless = std::env::var_os("ADAPT_BLESS").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            !name.ends_with(".expected") && !name.ends_with(".options.json")
        })
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 40, "only {} corpus files", inputs.len());
    let mut failures = Vec::new();
    for input in &inputs {
        let got = report(input);
        let expected_path = input.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no .expected file", input.display()));
        if got != expected {
            failures.push(format!(
                "{}:\n  expected: {expected:?}\n  got:      {got:?}",
                input.display()
            ));
        }
        // Every corpus file is malformed: it must report at least one error or warning.
        assert!(
            got.starts_with("fatal") || got.contains("\nerror") || got.contains("\nwarning"),
            "{} reports no problem: {got}",
            input.display()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
