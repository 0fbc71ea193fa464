//! `adapt data inspect | prepare | bench`: check a dataset file, prepare it into the tokenized
//! cache, and measure import speed. Arguments become `adapt_api::datasets` options; all the
//! work happens there.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use adapt_api::datasets::{self, DataOptions, Format, InspectReport, LengthStats, Progress};
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};

use crate::args::ModelArg;
use crate::output::{human_bytes, human_count};

#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Format, counts, errors, token statistics and three rendered examples of a file.
    Inspect(Box<InspectArgs>),
    /// Validate, render and tokenize train / valid / test data into the dataset cache.
    Prepare(Box<PrepareArgs>),
    /// Time a generated CSV through templates and tokenizer, then the cached re-run.
    Bench(BenchArgs),
}

/// How files are read and rendered.
#[derive(Args, Clone)]
pub(crate) struct ReadArgs {
    /// JSONL format instead of detecting it: chat, completions or text.
    #[arg(long)]
    format: Option<String>,
    /// Key of the prompt in completions JSONL.
    #[arg(long, default_value = "prompt")]
    prompt_key: String,
    /// Key of the completion in completions JSONL.
    #[arg(long, default_value = "completion")]
    completion_key: String,
    /// Key of the text in text JSONL.
    #[arg(long, default_value = "text")]
    text_key: String,
    /// CSV: Jinja template of the prompt over the columns, e.g. "{{ Name }} is {{ Age }}".
    #[arg(long)]
    prompt_template: Option<String>,
    /// CSV: Jinja template of the completion.
    #[arg(long)]
    completion_template: Option<String>,
    /// CSV: the column to learn (the prompt lists the other columns).
    #[arg(long)]
    completion_column: Option<String>,
    /// CSV field delimiter [default: ',' or tab for .tsv].
    #[arg(long)]
    delimiter: Option<char>,
    /// Longest accepted line, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    max_line_bytes: usize,
    /// Longest example in tokens (longer ones are truncated in training) [default: 2048].
    #[arg(long)]
    pub(crate) max_seq_length: Option<u32>,
    /// Train on every token, not only assistant turns and completions.
    #[arg(long)]
    no_mask_prompt: bool,
    /// Skip invalid examples (and report them) instead of refusing the file.
    #[arg(long)]
    skip_invalid: bool,
    /// How many errors to list.
    #[arg(long, default_value_t = 10)]
    max_errors: usize,
}

impl ReadArgs {
    pub(crate) fn options(&self) -> Result<DataOptions> {
        let mut o = DataOptions::default();
        o.import.format =
            match &self.format {
                Some(f) => Some(Format::parse(f).ok_or_else(|| {
                    anyhow!("unknown format '{f}'; use chat, completions or text")
                })?),
                None => None,
            };
        o.import.keys.prompt = self.prompt_key.clone();
        o.import.keys.completion = self.completion_key.clone();
        o.import.keys.text = self.text_key.clone();
        o.import.csv.prompt_template = self.prompt_template.clone();
        o.import.csv.completion_template = self.completion_template.clone();
        o.import.csv.completion_column = self.completion_column.clone();
        o.import.csv.delimiter = match self.delimiter {
            Some(c) if c.is_ascii() => Some(c as u8),
            Some(c) => {
                return Err(anyhow!(
                    "the delimiter must be one ASCII character, not '{c}'"
                ))
            }
            None => None,
        };
        o.import.max_line_bytes = self.max_line_bytes;
        o.max_seq_length = self.max_seq_length.unwrap_or(o.max_seq_length);
        o.render.mask_prompt = !self.no_mask_prompt;
        o.skip_invalid = self.skip_invalid;
        o.max_errors = self.max_errors;
        Ok(o)
    }
}

#[derive(Args)]
struct InspectArgs {
    /// The CSV, TSV or JSONL file.
    file: PathBuf,
    #[command(flatten)]
    model: ModelArg,
    /// Skip tokenization (no model needed).
    #[arg(long)]
    no_model: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Args)]
struct PrepareArgs {
    /// Training data (split by --valid-ratio / --test-ratio when no other file is given).
    #[arg(long)]
    train: PathBuf,
    /// Validation data.
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Test data.
    #[arg(long)]
    test: Option<PathBuf>,
    #[arg(long, default_value_t = 0.1)]
    valid_ratio: f64,
    #[arg(long, default_value_t = 0.0)]
    test_ratio: f64,
    /// Seed of the ratio split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where prepared datasets are kept [default: ~/.cache/adapt/datasets].
    #[arg(long, env = "ADAPT_DATA_CACHE")]
    cache_dir: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// Rows in the generated CSV.
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    #[command(flatten)]
    model: ModelArg,
}

pub fn run(args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::Inspect(a) => inspect(a),
        DataCommand::Prepare(a) => prepare(a),
        DataCommand::Bench(a) => bench(a),
    }
}

fn inspect(args: &InspectArgs) -> Result<()> {
    let opts = args.read.options()?;
    let path = args.model.path(&adapt_api::Adapt::start()?);
    let model = if args.no_model || (args.model.model.is_none() && !path.is_file()) {
        None
    } else {
        Some(datasets::load_text_model(&path)?)
    };
    let report = datasets::inspect(&args.file, &opts, model.as_ref(), 3, &mut |_| {})?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_inspect(&report, model.is_some());
    }
    Ok(())
}

fn print_inspect(r: &InspectReport, with_model: bool) {
    let f = &r.file;
    let format = f.format.map_or("unknown", Format::name);
    println!("file        {}", f.path.display());
    match &f.csv {
        Some(csv) => {
            println!(
                "format      {format}, from CSV (delimiter {:?}, {} columns: {})",
                csv.delimiter,
                csv.columns.len(),
                csv.columns.join(", ")
            );
            println!("prompt      {}", csv.prompt.replace('\n', "\\n"));
            if let Some(c) = &csv.completion {
                println!("completion  {c}");
            }
        }
        None => println!("format      {format} (JSONL)"),
    }
    println!(
        "examples    {} valid, {} invalid, {} duplicates",
        f.examples, f.invalid, f.duplicates
    );
    for e in &f.errors {
        println!("  error [{}] {}", e.code, e.message);
    }
    if f.invalid as usize > f.errors.len() {
        println!("  … and {} more", f.invalid as usize - f.errors.len());
    }
    for w in &f.warnings {
        println!("  warning [{}] {}", w.code, w.message);
    }
    match &r.stats {
        Some(s) => print_stats(s),
        None if with_model => {}
        None => println!("tokens      (no model: pass --model to see token statistics)"),
    }
    for s in &r.samples {
        println!(
            "\nexample at line {}{}",
            s.line,
            match (s.tokens, s.trained) {
                (Some(t), Some(tr)) => format!(" · {t} tokens, {tr} trained (between « »)"),
                _ => String::new(),
            }
        );
        match &s.marked {
            Some(text) => println!("{text}"),
            None => println!(
                "{}",
                serde_json::to_string_pretty(&s.example).unwrap_or_default()
            ),
        }
    }
}

fn print_stats(s: &LengthStats) {
    println!(
        "tokens      {} in all, {} trained; per example min {} · p50 {} · p95 {} · max {} · mean {:.1}",
        s.tokens, s.trained_tokens, s.min, s.p50, s.p95, s.max, s.mean
    );
    println!(
        "truncation  {} of {} examples exceed max_seq_length {} ({} tokens would be cut)",
        s.truncated, s.count, s.max_seq_length, s.truncated_tokens
    );
    let widest = s
        .histogram
        .iter()
        .map(|b| b.count)
        .max()
        .unwrap_or(0)
        .max(1);
    for b in &s.histogram {
        let label = match b.hi {
            Some(hi) => format!("{:>6}–{:<6}", b.lo + 1, hi),
            None => format!("{:>6}+      ", b.lo + 1),
        };
        let bar = "█".repeat(((b.count * 40).div_ceil(widest)) as usize);
        println!("  {label} {bar} {}", b.count);
    }
}

fn cache_root(arg: &Option<PathBuf>) -> Result<PathBuf> {
    match arg {
        Some(dir) => Ok(dir.clone()),
        None => Ok(datasets::default_cache_root()?),
    }
}

/// A progress bar on stderr (redrawn in place on a terminal; one line at the end otherwise).
struct Bar {
    tty: bool,
}

impl Bar {
    fn update(&self, p: Progress) {
        if !self.tty {
            return;
        }
        let frac = if p.total_bytes == 0 {
            1.0
        } else {
            p.bytes as f64 / p.total_bytes as f64
        };
        let filled = (frac * 30.0).round() as usize;
        eprint!(
            "\r[{}{}] {:>3.0}% {} examples, {} of {}",
            "#".repeat(filled.min(30)),
            " ".repeat(30 - filled.min(30)),
            frac * 100.0,
            p.examples,
            human_bytes(p.bytes),
            human_bytes(p.total_bytes)
        );
        let _ = std::io::stderr().flush();
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

fn prepare(args: &PrepareArgs) -> Result<()> {
    let opts = args.read.options()?;
    let model = datasets::load_text_model(&args.model.path(&adapt_api::Adapt::start()?))?;
    let inputs = datasets::PrepareInputs {
        train: args.train.clone(),
        valid: args.valid.clone(),
        test: args.test.clone(),
        ratios: datasets::SplitRatios {
            valid: args.valid_ratio,
            test: args.test_ratio,
            seed: args.seed,
        },
    };
    let bar = Bar {
        tty: std::io::stderr().is_terminal(),
    };
    let result = datasets::prepare(
        &inputs,
        &opts,
        &model,
        &cache_root(&args.cache_dir)?,
        &mut |p| bar.update(p),
    );
    bar.finish();
    let report = result?;
    for f in &report.files {
        if f.invalid > 0 {
            eprintln!(
                "skipped {} invalid example(s) in {}:",
                f.invalid,
                f.path.display()
            );
            for e in &f.errors {
                eprintln!("  [{}] {}", e.code, e.message);
            }
        }
        if f.duplicates > 0 {
            eprintln!(
                "{} duplicate example(s) in {} (kept)",
                f.duplicates,
                f.path.display()
            );
        }
    }
    println!(
        "{} in {:.2} s → {}",
        if report.cached {
            "reused the cache"
        } else {
            "prepared"
        },
        report.seconds,
        report.dir.display()
    );
    for s in &report.splits {
        println!(
            "  {:<5} {:>8} examples {:>10} tokens {:>10} trained",
            s.split.name(),
            s.examples,
            s.tokens,
            s.trained_tokens
        );
    }
    print_stats(&report.train_stats);
    Ok(())
}

fn bench(args: &BenchArgs) -> Result<()> {
    let model = datasets::load_text_model(&args.model.path(&adapt_api::Adapt::start()?))?;
    let dir = std::env::temp_dir().join(format!("adapt-data-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = datasets::bench(&model, args.rows, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let r = result?;
    println!(
        "rows        {} (generated Titanic CSV, template + chat template + tokenizer)",
        r.rows
    );
    println!(
        "first pass  {:.3} s · {} rows/s · {} tokens/s ({} tokens)",
        r.first_seconds,
        human_count(r.rows_per_second),
        human_count(r.tokens_per_second),
        r.tokens
    );
    println!(
        "cached      {:.4} s · {:.0}× faster",
        r.cached_seconds, r.speedup
    );
    Ok(())
}
