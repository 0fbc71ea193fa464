//! Topics from the terminal, on a tiny model with SmolLM2's tokenizer and chat template:
//! `adapt isolate bench` runs the four conditions over the example set and reports figures
//! that hold together (no history prefills least, the labels give one cache per topic, the
//! routing accuracy is a fraction); a bad set is refused naming the line and the field; and
//! `adapt chat --topics` routes, lists and moves.

mod common;

use std::path::{Path, PathBuf};

use common::{expect_failure, text};

fn tiny_model(dir: &Path) -> PathBuf {
    let out = dir.join("tiny");
    adapt_engine::testing::write_tiny_folder_like(&adapt_testsupport::smollm2_gguf(), &out)
        .unwrap();
    out
}

fn example_set() -> PathBuf {
    adapt_testsupport::repo_root().join("examples/topics/conversations.jsonl")
}

#[test]
fn the_bench_runs_the_four_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let set = example_set();
    let args = [
        "isolate",
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--data",
        set.to_str().unwrap(),
        "--limit",
        "2",
        "--max-tokens",
        "3",
    ];
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = common::run(&json_args, "", &dir.path().join("data"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let conditions = report["conditions"].as_array().unwrap();
    let names: Vec<&str> = conditions
        .iter()
        .map(|c| c["condition"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shared", "none", "oracle", "routed"]);
    let figure = |i: usize, key: &str| conditions[i][key].as_f64().unwrap();
    for i in 0..4 {
        assert_eq!(figure(i, "conversations"), 2.0);
        assert_eq!(figure(i, "questions"), 6.0);
        let ll = figure(i, "answer_logprob");
        assert!(ll.is_finite() && ll < 0.0, "{ll}");
        assert!(figure(i, "ttft_median") > 0.0);
        assert!(figure(i, "cache_bytes") > 0.0);
        for share in ["exact_match", "contains_answer"] {
            assert!((0.0..=1.0).contains(&figure(i, share)));
        }
    }
    // No history: the least prefilled and the smallest cache; one cache when shared, one per
    // labelled topic (three in every example conversation).
    assert!(figure(1, "prefilled_tokens") < figure(0, "prefilled_tokens") / 2.0);
    assert!(figure(1, "cache_tokens") < figure(0, "cache_tokens") / 4.0);
    assert_eq!(figure(0, "caches"), 1.0);
    assert_eq!(figure(2, "caches"), 3.0);
    assert!(figure(3, "caches") >= 1.0);
    // Each labelled topic holds the opening and its own turns: about the shared cache's
    // tokens plus two more openings.
    assert!(figure(2, "cache_tokens") > figure(0, "cache_tokens"));
    assert_eq!(conditions[2]["routing_accuracy"].as_f64(), Some(1.0));
    let routed = conditions[3]["routing_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&routed));
    assert!(conditions[0]["routing_accuracy"].is_null());
    assert_eq!(report["questions"].as_array().unwrap().len(), 24);

    // The table names every condition.
    let out = common::run(&args, "", &dir.path().join("data"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for name in [
        "1 shared cache",
        "2 no cache",
        "3 isolated by label",
        "4 isolated by routing",
    ] {
        assert!(table.contains(name), "{table}");
    }
}

#[test]
fn a_bad_set_is_refused_naming_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let good = std::fs::read_to_string(example_set()).unwrap();
    let first = good.lines().next().unwrap();
    let bad = first.replacen(r#""answer": "#, r#""answr": "#, 1);
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, format!("{first}\n{bad}\n")).unwrap();
    let out = common::run(
        &[
            "isolate",
            "bench",
            "--model",
            model.to_str().unwrap(),
            "--data",
            path.to_str().unwrap(),
        ],
        "",
        &dir.path().join("data"),
    );
    let stderr = expect_failure(&out, "data.missing_key");
    assert!(stderr.contains("bad.jsonl:2"), "{stderr}");
    assert!(stderr.contains("questions[0].answer"), "{stderr}");
}

#[test]
fn chat_with_topics_routes_lists_and_moves() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = "@new My sourdough starter smells sharp.\n\
                 @new My chain slips on the small cog.\n\
                 @1 How long should the dough proof?\n\
                 When do brake pads wear out?\n\
                 /topics\n\
                 /move 3 2\n\
                 /move 9 1\n";
    let out = common::run(
        &[
            "chat",
            "--model",
            model.to_str().unwrap(),
            "--topics",
            "--max-tokens",
            "3",
            "--quiet",
        ],
        input,
        &dir.path().join("data"),
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("[topic 1 \"sourdough starter smells\" · new, as asked]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[topic 2 \"chain slips small\" · new, as asked]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[topic 1 \"sourdough starter smells\" · as asked]"),
        "{stderr}"
    );
    // The fourth message is routed by meaning: the line says where and with what similarity.
    assert!(
        stderr.contains("similarity") || stderr.contains("new: closest"),
        "{stderr}"
    );
    let listing = stderr.split("[topic").last().unwrap();
    assert!(
        listing.contains("topic 1 \"sourdough starter smells\": 2 turns (1, 3)"),
        "{stderr}"
    );
    // After moving turn 3, topic 1 holds turn 1 alone and topic 2 turns 2 and 3, each
    // cache refilled (the tiny random model sends turn 4 to a topic of its own).
    let after = listing.rsplit("  topic 1 ").next().unwrap();
    assert!(
        after.starts_with("\"sourdough starter smells\": 1 turn (1) · cache 42 tokens"),
        "{stderr}"
    );
    assert!(
        after.contains("topic 2 \"chain slips small\": 2 turns (2, 3) · cache 64 tokens"),
        "{stderr}"
    );
    assert!(stderr.contains("there is no turn 9 (4 turns)"), "{stderr}");
}
