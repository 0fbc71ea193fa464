//! Preparation end to end on the real SmolLM2 tokenizer: CSV through the Titanic mapping,
//! splits by ratio or by file, the cache (reused, invalidated by content and options),
//! refusing or skipping invalid rows, inspect's report, and batches that resume exactly.

mod common;

use adapt_data::sample::{titanic_mapping, write_titanic_csv};
use adapt_data::{
    inspect, prepare, BatchConfig, Batcher, DataOptions, Format, Position, PrepareInputs, Split,
    SplitRatios,
};

fn inputs(train: &std::path::Path) -> PrepareInputs {
    PrepareInputs {
        train: train.to_path_buf(),
        valid: None,
        test: None,
        ratios: SplitRatios {
            valid: 0.2,
            test: 0.1,
            seed: 1,
        },
    }
}

fn titanic_opts() -> DataOptions {
    let mut opts = DataOptions::default();
    opts.import.csv = titanic_mapping();
    opts
}

#[test]
fn csv_is_prepared_split_cached_and_invalidated() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("titanic.csv");
    write_titanic_csv(&csv, 300, 7).unwrap();
    let cache = dir.path().join("cache");
    let model = common::smollm2();
    let first = prepare(&inputs(&csv), &titanic_opts(), model, &cache, &mut |_| {}).unwrap();
    assert!(!first.cached);
    let counts: Vec<u64> = first.splits.iter().map(|s| s.examples).collect();
    assert_eq!(counts.iter().sum::<u64>(), 300);
    assert!(counts[1] > 30 && counts[2] > 10, "{counts:?}");
    assert_eq!(first.files[0].format, Some(Format::Completions));
    assert_eq!(first.train_stats.count, counts[0]);
    // Every example trains exactly "yes<|im_end|>" or "no<|im_end|>".
    let train = first.open(Split::Train).unwrap().unwrap();
    let tk = model.tokenizer();
    for i in 0..train.len() {
        let ex = train.example(i);
        let trained: Vec<u32> = ex
            .tokens
            .iter()
            .zip(&ex.mask)
            .filter(|(_, &m)| m)
            .map(|(&t, _)| t)
            .collect();
        let text = tk.decode(&trained, false).unwrap();
        assert!(text == "yes<|im_end|>" || text == "no<|im_end|>", "{text}");
    }
    let again = prepare(&inputs(&csv), &titanic_opts(), model, &cache, &mut |_| {}).unwrap();
    assert!(again.cached);
    assert_eq!(
        (again.key.as_str(), &again.splits),
        (first.key.as_str(), &first.splits)
    );
    // Other options or other content: another key.
    let mut unmasked = titanic_opts();
    unmasked.render.mask_prompt = false;
    let other = prepare(&inputs(&csv), &unmasked, model, &cache, &mut |_| {}).unwrap();
    assert!(!other.cached);
    assert_ne!(other.key, first.key);
    write_titanic_csv(&csv, 301, 7).unwrap();
    let grown = prepare(&inputs(&csv), &titanic_opts(), model, &cache, &mut |_| {}).unwrap();
    assert!(!grown.cached);
    assert_eq!(grown.splits.iter().map(|s| s.examples).sum::<u64>(), 301);
}

#[test]
fn invalid_rows_are_refused_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let bad = common::write(
        dir.path(),
        "chat.jsonl",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}]}\n\
         {\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n\
         not json\n",
    );
    let model = common::smollm2();
    let cache = dir.path().join("cache");
    let err = prepare(
        &inputs(&bad),
        &DataOptions::default(),
        model,
        &cache,
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(err.code(), "data.invalid");
    let msg = err.to_string();
    assert!(msg.contains("has 2 invalid example(s)"), "{msg}");
    assert!(
        msg.contains("chat.jsonl:2: the chat has no assistant turn"),
        "{msg}"
    );
    assert!(
        msg.contains("chat.jsonl:3: malformed JSON: expected ident at column 2"),
        "{msg}"
    );
    let opts = DataOptions {
        skip_invalid: true,
        ..DataOptions::default()
    };
    let mut given = inputs(&bad);
    given.valid = Some(bad.clone());
    let report = prepare(&given, &opts, model, &cache, &mut |_| {}).unwrap();
    assert_eq!(report.files[0].invalid, 2);
    assert_eq!(report.files[0].errors.len(), 2);
    // Given files are used as they are: no ratio split.
    assert_eq!(report.splits[0].examples, 1);
    assert_eq!(report.splits[1].examples, 1);
    assert_eq!(report.splits[2].examples, 0);
}

#[test]
fn inspect_reports_stats_and_marked_samples() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!(
            "{{\"messages\": [{{\"role\": \"user\", \"content\": \"Question {i}?\"}}, {{\"role\": \"assistant\", \"content\": \"Answer {i}.\"}}]}}\n"
        ));
    }
    let path = common::write(dir.path(), "chat.jsonl", &text);
    let opts = DataOptions {
        max_seq_length: 32,
        ..DataOptions::default()
    };
    let r = inspect(&path, &opts, Some(common::smollm2()), 3, &mut |_| {}).unwrap();
    assert_eq!((r.file.examples, r.file.invalid), (20, 0));
    assert_eq!(r.samples.len(), 3);
    let marked = r.samples[0].marked.as_deref().unwrap();
    assert!(
        marked.ends_with("<|im_start|>assistant\n«Answer 0.<|im_end|>»\n"),
        "{marked}"
    );
    let s = r.stats.unwrap();
    assert_eq!(s.count, 20);
    assert!(s.min > 32 && s.truncated == 20, "{s:?}");
    assert_eq!(s.truncated_tokens, s.tokens - 20 * 32);
}

#[test]
fn batches_are_bucketed_padded_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    write_titanic_csv(&csv, 200, 3).unwrap();
    let mut only_train = inputs(&csv);
    only_train.ratios = SplitRatios {
        valid: 0.0,
        test: 0.0,
        seed: 0,
    };
    let model = common::smollm2();
    let report = prepare(
        &only_train,
        &titanic_opts(),
        model,
        &dir.path().join("c"),
        &mut |_| {},
    )
    .unwrap();
    let train = report.open(Split::Train).unwrap().unwrap();
    let config = BatchConfig {
        batch_size: 16,
        max_seq_length: 40,
        seed: 5,
        pad_id: 0,
    };
    let batcher = Batcher::new(&train, config).unwrap();
    assert_eq!(batcher.batches_per_epoch(), 200usize.div_ceil(16));
    let mut pos = Position::default();
    let mut seen = Vec::new();
    for _ in 0..batcher.batches_per_epoch() {
        let b = batcher.next_batch(&mut pos);
        assert_eq!(b.width % 8, 0);
        assert_eq!(b.tokens.len(), b.rows * b.width);
        assert!(b
            .lengths
            .iter()
            .all(|&l| l as usize <= 40 && l as usize <= b.width));
        assert!(b.width < *b.lengths.iter().max().unwrap() as usize + 8);
        for (r, &i) in b.indices.iter().enumerate() {
            let ex = train.example(i);
            let n = b.lengths[r] as usize;
            assert_eq!(&b.tokens[r * b.width..r * b.width + n], &ex.tokens[..n]);
            let row_mask = &b.mask[r * b.width..(r + 1) * b.width];
            assert!(row_mask[n..].iter().all(|&m| m == 0));
            assert_eq!(
                row_mask[..n].iter().map(|&m| m == 1).collect::<Vec<_>>(),
                ex.mask[..n].to_vec()
            );
        }
        seen.extend(b.indices);
    }
    seen.sort();
    assert_eq!(
        seen,
        (0..200).collect::<Vec<_>>(),
        "an epoch visits every example once"
    );
    assert_eq!(pos, Position { epoch: 1, step: 0 });
    // Epochs are shuffled differently; a saved position resumes with the same next batch.
    let e0: Vec<_> = (0..5)
        .map(|s| batcher.batch_at(Position { epoch: 0, step: s }).indices)
        .collect();
    let e1: Vec<_> = (0..5)
        .map(|s| batcher.batch_at(Position { epoch: 1, step: s }).indices)
        .collect();
    assert_ne!(e0, e1);
    let mut run = Position::default();
    for _ in 0..20 {
        batcher.next_batch(&mut run);
    }
    let saved = serde_json::to_string(&run).unwrap();
    let expected = batcher.next_batch(&mut run);
    let mut resumed: Position = serde_json::from_str(&saved).unwrap();
    let fresh = Batcher::new(&train, config).unwrap();
    assert_eq!(fresh.next_batch(&mut resumed), expected);
    assert_eq!(resumed, run);
}

/// The prepared caches are byte for byte what rows read, rendered and tokenized one at a time
/// give — the importer's row iterator and whole-segment tokenization, without the chunked
/// reading, the rendering and tokenizing on rayon's threads, the splice or the memo of short
/// texts — on texts that repeat (the Titanic mapping) and texts that do not (names in them).
#[test]
fn prepared_bytes_match_rows_prepared_one_by_one() {
    use adapt_data::cache::CacheWriter;
    use adapt_data::{At, Importer};
    let dir = tempfile::tempdir().unwrap();
    let model = common::smollm2();
    let csv = dir.path().join("titanic.csv");
    write_titanic_csv(&csv, 5000, 11).unwrap();
    let mut named = titanic_opts();
    named.import.csv.prompt_template = Some(format!(
        "{} Name: {{{{ Name }}}}",
        adapt_data::sample::TITANIC_PROMPT
    ));
    for (case, opts) in [("titanic", titanic_opts()), ("named", named)] {
        let cache = dir.path().join(format!("cache-{case}"));
        let report = prepare(&inputs(&csv), &opts, model, &cache, &mut |_| {}).unwrap();
        assert!(!report.cached);
        let ratios = inputs(&csv).ratios;
        let reference = |split: Split| dir.path().join(format!("{case}-{}.tok", split.name()));
        let mut writers: Vec<CacheWriter> = Split::ALL
            .iter()
            .map(|&s| CacheWriter::create(&reference(s)).unwrap())
            .collect();
        for (index, row) in Importer::open(&csv, &opts.import).unwrap().enumerate() {
            let row = row.unwrap();
            let at = At::new(&csv, row.line);
            let tok = model
                .tokenize_unspliced(&row.example, &opts.render, &at)
                .unwrap();
            let split = ratios.assign(index as u64);
            writers[split as usize].push(row.line, &tok).unwrap();
        }
        for (split, writer) in Split::ALL.into_iter().zip(writers) {
            writer.finish().unwrap();
            let ours = std::fs::read(report.dir.join(format!("{}.tok", split.name()))).unwrap();
            let theirs = std::fs::read(reference(split)).unwrap();
            assert!(!theirs.is_empty());
            assert!(ours == theirs, "{case}: the {} split differs", split.name());
        }
    }
}
