//! `adapt bench train`: LoRA / DoRA / QLoRA × batch sizes on one model and dataset — trained
//! tokens/s and steps/s (medians over the measured steps, after a warm-up), peak memory and
//! its ratio to the base's weights, the quantized base's compression and the validation loss
//! after the steps — as a table or JSON.

use std::path::PathBuf;

use adapt_api::bench_train::{BenchMethod, Reference, TrainBenchReport, TrainBenchRequest};
use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::args::ModelArg;
use crate::output::human_bytes;

/// A method as the command line names it.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// LoRA on the float base.
    Lora,
    /// DoRA on the float base.
    Dora,
    /// LoRA on the quantized base.
    Qlora,
}

impl From<Method> for BenchMethod {
    fn from(m: Method) -> BenchMethod {
        match m {
            Method::Lora => BenchMethod::Lora,
            Method::Dora => BenchMethod::Dora,
            Method::Qlora => BenchMethod::Qlora,
        }
    }
}

#[derive(Args)]
pub struct TrainBenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// A dataset file (JSONL, CSV, TSV; a share is held out for validation) or a folder with
    /// train.jsonl and valid.jsonl.
    #[arg(long, default_value = "examples/blue-lantern.jsonl")]
    data: PathBuf,
    /// Methods, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "lora,dora,qlora"
    )]
    methods: Vec<Method>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    batch_sizes: Vec<usize>,
    /// Steps trained before measuring.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Steps measured (at least 3: rates are their median).
    #[arg(long, default_value_t = 5)]
    steps: u64,
    #[arg(long, default_value_t = 8)]
    rank: i32,
    /// Blocks adapted, from the last.
    #[arg(long, default_value_t = 8)]
    num_layers: i32,
    #[arg(long, default_value_t = 512)]
    max_seq_length: usize,
    #[arg(long, default_value_t = 1e-4)]
    learning_rate: f64,
    /// Share of a data file held out for validation.
    #[arg(long, default_value_t = 0.25)]
    valid_share: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json_file: Option<PathBuf>,
    /// Also train each setting with mlx-lm's `lora` (same data split, steps, batch, rank,
    /// layers, max length, learning rate) and show it beside.
    #[arg(long)]
    reference: bool,
    /// The Python with mlx-lm for --reference (scripts/reference/env.sh prints one).
    #[arg(long, env = "ADAPT_REFERENCE_PYTHON")]
    reference_python: Option<PathBuf>,
}

impl TrainBenchArgs {
    fn request(&self, model: PathBuf) -> TrainBenchRequest {
        TrainBenchRequest {
            model,
            data: self.data.clone(),
            methods: self.methods.iter().map(|&m| m.into()).collect(),
            batch_sizes: self.batch_sizes.clone(),
            warmup: self.warmup,
            steps: self.steps,
            rank: self.rank,
            num_layers: self.num_layers,
            max_seq_length: self.max_seq_length,
            learning_rate: self.learning_rate,
            valid_share: self.valid_share,
            ..TrainBenchRequest::default()
        }
    }
}

pub fn run(args: &TrainBenchArgs) -> Result<()> {
    let adapt = adapt_api::Adapt::start()?;
    let req = TrainBenchRequest {
        seed: args.seed,
        ..args.request(args.model.path(&adapt))
    };
    req.check()?;
    let python = match (args.reference, &args.reference_python) {
        (false, _) => None,
        (true, Some(p)) if p.is_file() => Some(p.clone()),
        (true, p) => anyhow::bail!(
            "--reference runs mlx-lm's lora with the Python given by --reference-python or \
             ADAPT_REFERENCE_PYTHON{}; scripts/reference/env.sh prints one",
            p.as_ref()
                .map(|p| format!(" ({} is not a file)", p.display()))
                .unwrap_or_default()
        ),
    };
    eprintln!(
        "Benchmarking training of {} on {}: {} warm-up + {} measured steps per setting …",
        req.model.display(),
        req.data.display(),
        req.warmup,
        req.steps
    );
    let report = adapt.bench_train(&req, &mut |method, batch| {
        eprintln!("  {} · batch {batch} …", method.name());
    })?;
    let mut report = report;
    if let Some(python) = python {
        eprintln!(
            "mlx-lm's lora on the same settings ({}) …",
            python.display()
        );
        let refs = adapt.bench_train_reference(&python, &report, &mut |method, batch| {
            eprintln!("  {} · batch {batch} …", method.name());
        })?;
        for (row, r) in report.rows.iter_mut().zip(refs) {
            row.reference = Some(r);
        }
    }
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.json_file {
        std::fs::write(path, &json)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &TrainBenchReport) {
    let q = &r.request;
    println!(
        "{} ({}) · {} train / {} valid examples · rank {}, {} layers, max length {}, lr {} · \
         {} warm-up + {} measured steps, rates are medians over the measured steps",
        r.backend,
        r.cpu,
        r.train_examples,
        r.valid_examples,
        q.rank,
        q.num_layers,
        q.max_seq_length,
        q.learning_rate,
        q.warmup,
        q.steps
    );
    println!(
        "{:<6} {:>5} {:<22} {:>10} {:>8} {:>10} {:>10} {:>7} {:>7} {:>9}",
        "method",
        "batch",
        "base",
        "tok/s",
        "steps/s",
        "peak",
        "weights",
        "peak/w",
        "compr",
        "val loss"
    );
    for row in &r.rows {
        let f = &row.figures;
        println!(
            "{:<6} {:>5} {:<22} {:>10.1} {:>8.3} {:>10} {:>10} {:>6.2}× {:>6.2}× {:>9.4}",
            row.method.name(),
            row.batch_size,
            row.base,
            f.tokens_per_second,
            f.steps_per_second,
            human_bytes(f.peak_memory),
            human_bytes(f.weight_bytes),
            row.peak_per_weights,
            row.compression,
            f.val_loss
        );
        match &row.reference {
            Some(Reference::Measured(m)) => println!(
                "  mlx-lm {:>23} {:>10.1} {:>8.3} {:>10} {:>10} {:>6.2}× {:>7} {:>9.4}   \
                 adapt/mlx-lm: tok/s {:.2}×, peak {:.2}×; trained tokens {} / {}",
                "",
                m.tokens_per_second,
                m.steps_per_second,
                human_bytes(m.peak_memory),
                "",
                m.peak_memory as f64 / f.weight_bytes.max(1) as f64,
                "",
                m.val_loss,
                f.tokens_per_second / m.tokens_per_second,
                f.peak_memory as f64 / m.peak_memory.max(1) as f64,
                f.trained_tokens,
                m.trained_tokens
            ),
            Some(Reference::NotComparable(why)) => println!("  mlx-lm: not run — {why}"),
            None => {}
        }
    }
}
