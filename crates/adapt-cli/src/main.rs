//! `adapt`: fine-tune and chat with local language models on MLX, from the terminal.
//!
//! Every command parses its arguments, calls `adapt-api`, and prints; no logic lives here.

mod args;
mod bench;
mod bench_train;
mod chat;
mod convert;
mod data;
mod doctor;
mod generate;
mod isolate;
mod jobs;
mod launch;
mod models;
mod output;
mod runs;
mod serve;
mod sweep;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "adapt",
    version,
    about = "Fine-tune and chat with local language models on MLX"
)]
struct Cli {
    /// Where the engine computes: auto (the GPU if it works, else the CPU, saying why), gpu
    /// (refuse to start without it) or cpu. Also read from ADAPT_DEVICE.
    #[arg(long, global = true, value_name = "DEVICE", value_parser = parse_device)]
    device: Option<adapt_api::DevicePreference>,
    #[command(subcommand)]
    command: Command,
}

fn parse_device(s: &str) -> Result<adapt_api::DevicePreference, String> {
    s.parse()
}

#[derive(Subcommand)]
enum Command {
    /// Check the MLX runtime, backend, memory and the models found.
    Doctor(doctor::DoctorArgs),
    /// Generate a reply to one prompt and print it as it streams.
    Generate(generate::GenerateArgs),
    /// Chat with a model; the conversation keeps its KV cache between turns.
    Chat(chat::ChatArgs),
    /// Topic-isolated KV caches: `isolate bench` measures what one cache per topic buys
    /// against one shared cache and none.
    Isolate(isolate::IsolateArgs),
    /// Measure prefill and decode speed, time to first token and peak memory; `bench train`
    /// measures training.
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
    /// Serve the model and its adapters over an OpenAI-compatible HTTP API, reusing cached
    /// prompt prefixes across requests.
    Serve(Box<serve::ServeArgs>),
    Train(Box<train::TrainArgs>),
    /// Search training settings (TPE, successive halving on validation loss) on one loaded
    /// model; `adapt sweep show N` ranks the trials, `--resume N` goes on where it stopped.
    Sweep(Box<sweep::SweepArgs>),
    /// Train on several processes or machines at once (data-parallel, MLX's distributed engine).
    Launch(launch::LaunchArgs),
    Fuse(train::FuseArgs),
    /// This machine's Adapt version, memory and which of PATHS exist, as JSON (what a check
    /// of the machines of a group asks each one over ssh).
    #[command(name = "machine-report", hide = true)]
    MachineReport(launch::MachineReportArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Some(device) = cli.device {
        // Before any thread starts; ranks started by `adapt launch` inherit it.
        std::env::set_var(adapt_api::DEVICE_ENV, device.name());
    }
    let result = match cli.command {
        Command::Doctor(args) => doctor::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Chat(args) => chat::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Isolate(args) => isolate::run(&args),
        Command::Data(args) => data::run(&args),
        Command::Convert(args) => convert::convert(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Train(args) => train::train(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Launch(args) => launch::run_launch(&args),
        Command::MachineReport(args) => launch::machine_report(&args),
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
