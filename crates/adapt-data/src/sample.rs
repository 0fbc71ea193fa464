//! Generated data for tests and the benchmark: a Titanic-style passenger table as CSV, its
//! standard column mapping, and [`bench`], which times a first preparation (template +
//! tokenizer) against the cached re-run.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::csvmap::CsvOptions;
use crate::error::DataError;
use crate::pipeline::DataOptions;
use crate::prepare::{prepare, PrepareInputs};
use crate::render::TextModel;
use crate::split::{Rng, SplitRatios};

/// The prompt template of the Titanic mapping.
pub const TITANIC_PROMPT: &str =
    "Passenger: {{ {'1': '1st', '2': '2nd', '3': '3rd'}[Pclass] }} class, \
{{ 'child' if Age and Age|float < 18 else 'adult' }}, \
{{ 'man' if Sex == 'male' else 'woman' }}. Did they survive?";

/// The completion template of the Titanic mapping.
pub const TITANIC_COMPLETION: &str = "{{ 'yes' if Survived == '1' else 'no' }}";

/// The Titanic column mapping.
pub fn titanic_mapping() -> CsvOptions {
    CsvOptions {
        prompt_template: Some(TITANIC_PROMPT.into()),
        completion_template: Some(TITANIC_COMPLETION.into()),
        ..CsvOptions::default()
    }
}

/// Writes `rows` seeded random passengers to `path` (header
/// `PassengerId,Survived,Pclass,Name,Sex,Age,Fare`; names are quoted and contain commas).
pub fn write_titanic_csv(path: &Path, rows: usize, seed: u64) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let first = [
        "Anna", "John", "Mary", "William", "Elin", "Karl", "Rose", "Jack",
    ];
    let last = [
        "Smith",
        "Andersson",
        "Brown",
        "Kelly",
        "Nilsson",
        "Dawson",
        "Moran",
    ];
    let mut rng = Rng::new(seed);
    writeln!(out, "PassengerId,Survived,Pclass,Name,Sex,Age,Fare").map_err(io)?;
    for id in 1..=rows {
        let male = rng.below(2) == 0;
        let age = match rng.below(10) {
            0 => String::new(),
            _ => (1 + rng.below(79)).to_string(),
        };
        writeln!(
            out,
            "{id},{},{},\"{}, {}. {}\",{},{age},{}.{:02}",
            rng.below(2),
            1 + rng.below(3),
            last[rng.below(last.len())],
            if male { "Mr" } else { "Mrs" },
            first[rng.below(first.len())],
            if male { "male" } else { "female" },
            5 + rng.below(200),
            rng.below(100),
        )
        .map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Benchmark figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Rows in the generated CSV.
    pub rows: u64,
    /// Tokens produced.
    pub tokens: u64,
    /// First preparation (import, templates, chat template, tokenizer, cache write), seconds.
    pub first_seconds: f64,
    /// Cached re-run (content hash, cache check), seconds.
    pub cached_seconds: f64,
    /// Rows per second, first pass.
    pub rows_per_second: f64,
    /// Tokens per second, first pass.
    pub tokens_per_second: f64,
    /// first / cached.
    pub speedup: f64,
}

/// Generates a `rows`-row Titanic CSV in `dir`, prepares it twice with `model` (the second
/// time from the cache in `dir`) and reports the speeds.
pub fn bench(model: &TextModel, rows: usize, dir: &Path) -> Result<BenchReport, DataError> {
    let csv = dir.join("titanic.csv");
    write_titanic_csv(&csv, rows, 42)?;
    let mut opts = DataOptions::default();
    opts.import.csv = titanic_mapping();
    let inputs = PrepareInputs {
        train: csv,
        valid: None,
        test: None,
        ratios: SplitRatios::default(),
    };
    let cache = dir.join("cache");
    let first = prepare(&inputs, &opts, model, &cache, &mut |_| {})?;
    let started = Instant::now();
    let again = prepare(&inputs, &opts, model, &cache, &mut |_| {})?;
    let cached_seconds = started.elapsed().as_secs_f64().max(1e-9);
    if !again.cached {
        return Err(DataError::BadOption {
            message: "the second preparation did not use the cache".into(),
        });
    }
    let tokens: u64 = first.splits.iter().map(|s| s.tokens).sum();
    let examples: u64 = first.splits.iter().map(|s| s.examples).sum();
    Ok(BenchReport {
        rows: examples,
        tokens,
        first_seconds: first.seconds,
        cached_seconds,
        rows_per_second: examples as f64 / first.seconds,
        tokens_per_second: tokens as f64 / first.seconds,
        speedup: first.seconds / cached_seconds,
    })
}
