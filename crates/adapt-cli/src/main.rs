//! `adapt`: fine-tune and chat with local language models on MLX, from the terminal.
//!
//! Every command parses its arguments, calls `adapt-api`, and prints; no logic lives here.

mod bench;
mod chat;
mod convert;
mod data;
mod doctor;
mod jobs;
mod models;
mod output;
mod runs;
mod train;

use std::path::PathBuf;

use adapt_api::{GenerateParams, SamplingParams};
use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "adapt",
    version,
    about = "Fine-tune and chat with local language models on MLX"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the MLX runtime, backend, memory and the models found.
    Doctor(doctor::DoctorArgs),
    /// Generate a reply to one prompt and print it as it streams.
    Generate(GenerateArgs),
    /// Chat with a model; the conversation keeps its KV cache between turns.
    Chat(chat::ChatArgs),
    /// Measure prefill and decode speed, time to first token and peak memory.
    Bench(bench::BenchArgs),
    /// Training runs: list them, or show one with its metrics and checkpoints.
    Runs(runs::RunsArgs),
    /// Long work (training, downloads, …): list it, or cancel a job.
    Jobs(jobs::JobsArgs),
    /// Check, prepare and benchmark datasets (CSV, TSV, JSONL).
    Data(data::DataArgs),
    /// Convert a GGUF file into an MLX model folder (Hugging Face layout, loads in mlx-lm).
    Convert(convert::ConvertArgs),
    /// Quantize a model folder to 4 or 8 bits (or dequantize it), with its quality cost.
    Quantize(convert::QuantizeArgs),
    /// Models: pull from the Hugging Face Hub, list, inspect, import, delete.
    Models(models::ModelsArgs),
    Train(Box<train::TrainArgs>),
    Fuse(train::FuseArgs),
}

/// Which model to use.
#[derive(Args, Clone)]
struct ModelArg {
    /// A GGUF file or a model folder (config.json + safetensors) [default: the bundled
    /// SmolLM2 in the models cache].
    #[arg(long, short, env = "ADAPT_MODEL")]
    model: Option<PathBuf>,
}

impl ModelArg {
    /// The file named, else the bundled model in the models cache the API resolves.
    fn path(&self, adapt: &adapt_api::Adapt) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(|| adapt.models_dir(None).join(doctor::BUNDLED_MODEL))
    }
}

/// Sampling and length settings shared by generate and chat.
#[derive(Args, Clone)]
struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// 0 is greedy; higher is more random.
    #[arg(long, visible_alias = "temp", default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// 0 turns top-k off.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    #[arg(long)]
    seed: Option<u64>,
    /// Stop before this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
}

impl SamplingArgs {
    fn params(&self) -> GenerateParams {
        GenerateParams {
            max_tokens: self.max_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_p: self.top_p,
                top_k: self.top_k,
                min_p: self.min_p,
                repetition_penalty: self.repetition_penalty,
                seed: self.seed,
                ..SamplingParams::default()
            },
            stop: self.stop.clone(),
            ..GenerateParams::default()
        }
    }
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The prompt.
    #[arg(long, short)]
    prompt: String,
    /// An adapter to generate with: a run id (`adapt runs list`) or an adapter folder (ours
    /// or mlx-lm's).
    #[arg(long)]
    adapter: Option<String>,
    /// Send the prompt as is, without the model's chat template.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Doctor(args) => doctor::run(&args),
        Command::Generate(args) => generate(&args),
        Command::Chat(args) => chat::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Data(args) => data::run(&args),
        Command::Convert(args) => convert::convert(&args),
        Command::Train(args) => train::train(&args),
        Command::Fuse(args) => train::fuse(&args),
        Command::Quantize(args) => convert::quantize(&args),
        Command::Runs(args) => runs::run(&args),
        Command::Jobs(args) => jobs::run(&args),
        Command::Models(args) => models::run(&args),
    };
    if let Err(e) = result {
        output::print_error(&e);
        std::process::exit(1);
    }
}

fn generate(args: &GenerateArgs) -> Result<()> {
    let adapt = output::start_with_adapter(&args.model, args.adapter.as_deref())?;
    let cancel = output::CtrlC::install();
    let mut out = output::Stream::default();
    let generation = adapt.generate(&args.prompt, args.raw, &args.sampling.params(), |event| {
        out.event(event, &cancel)
    })?;
    out.finish();
    output::print_stats(&generation);
    Ok(())
}
