//! `adapt bench`: prompt speed (prompt tokens over the time to the first token, the figure
//! mlx-lm reports), prefill and decode speed, time to first token and peak memory of a model,
//! from an empty cache, as the median of at least three runs after a warm-up;
//! `adapt bench train` measures training ([`crate::bench_train`]).

use adapt_api::GenerationStats;
use anyhow::Result;
use clap::{Args, Subcommand};

use crate::args::ModelArg;
use crate::output::{self, human_bytes};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: Option<BenchCommand>,
    #[command(flatten)]
    model: ModelArg,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Tokens to generate.
    #[arg(long, default_value_t = 128)]
    generate_tokens: usize,
    /// Measured runs (after one warm-up run; at least 3), of which the medians are shown;
    /// with --chat-history, passes of the whole chat benchmark.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Instead: a chat with this many tokens of history — time to first token of a cold turn
    /// against a warm one (cache reused), and saving / reopening the conversation.
    #[arg(long)]
    chat_history: Option<usize>,
    /// With --chat-history: keep the KV cache in 8 or 4 bits.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["4", "8"]))]
    kv_bits: Option<String>,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Training: LoRA / DoRA / QLoRA × batch sizes — trained tokens/s, steps/s, peak memory
    /// against the weights, the quantized base's compression, validation loss after N steps.
    Train(Box<crate::bench_train::TrainBenchArgs>),
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if let Some(BenchCommand::Train(train)) = &args.what {
        return crate::bench_train::run(train);
    }
    let adapt = output::start_with_model(&args.model)?;
    if let Some(history) = args.chat_history {
        let bits = args.kv_bits.as_deref().and_then(|b| b.parse().ok());
        return chat(&adapt, history, bits, args.runs, args.json);
    }
    let device = adapt.device()?;
    eprintln!(
        "Benchmarking on {} ({}): {} prompt tokens, {} generated, 1 warm-up + {} runs …",
        device.backend, device.cpu, args.prompt_tokens, args.generate_tokens, args.runs
    );
    let runs = args.runs.max(3);
    let all = adapt.bench(args.prompt_tokens, args.generate_tokens, runs + 1)?;
    let measured = &all[1..];
    let median = |f: fn(&GenerationStats) -> f64| -> f64 {
        let mut v: Vec<f64> = measured.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // The headline prompt figure is prompt tokens over the time to the first token, as
    // mlx-lm's benchmark reports it: prefill plus the first decode step.
    let prompt = args.prompt_tokens as f64 / median(|s| s.time_to_first_token);
    let prefill = median(|s| s.prefill_tokens_per_second);
    let decode = median(|s| s.decode_tokens_per_second);
    let ttft = median(|s| s.time_to_first_token);
    let peak = measured.iter().map(|s| s.peak_memory).max().unwrap_or(0);
    if args.json {
        let report = serde_json::json!({
            "backend": device.backend,
            "cpu": device.cpu,
            "prompt_tokens": args.prompt_tokens,
            "generate_tokens": args.generate_tokens,
            "runs": runs,
            "prompt_tokens_per_second": prompt,
            "prefill_tokens_per_second": prefill,
            "decode_tokens_per_second": decode,
            "time_to_first_token": ttft,
            "peak_memory": peak,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "prompt               {prompt:.1} tok/s ({} tokens / time to first token)",
            args.prompt_tokens
        );
        println!("  prefill alone      {prefill:.1} tok/s (without the first decode step)");
        println!(
            "decode               {decode:.1} tok/s ({} tokens)",
            args.generate_tokens
        );
        println!("time to first token  {ttft:.3} s");
        println!("peak memory          {}", human_bytes(peak));
    }
    Ok(())
}

fn chat(
    adapt: &adapt_api::Adapt,
    history: usize,
    kv_bits: Option<i32>,
    runs: usize,
    json: bool,
) -> Result<()> {
    let runs = runs.max(3);
    eprintln!(
        "Chat with {history} tokens of history: a cold turn, a warm one, save, reopen — \
         1 warm-up + {runs} passes …"
    );
    let b = adapt.bench_chat(history, kv_bits, runs)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&b)?);
        return Ok(());
    }
    println!(
        "history              {} tokens (medians of {} passes after a warm-up)",
        b.history_tokens, b.samples
    );
    println!(
        "cold turn            first token {:.3} s ({} tokens prefilled)",
        b.cold_ttft, b.cold_prefilled
    );
    println!(
        "warm turn            first token {:.3} s ({} reused, {} prefilled) = {:.1}% of cold",
        b.warm_ttft,
        b.warm_reused,
        b.warm_prefilled,
        100.0 * b.warm_ttft / b.cold_ttft
    );
    println!(
        "cache                {} in memory ({})",
        human_bytes(b.cache_bytes),
        kv_bits.map_or("full precision".into(), |b| format!("{b}-bit"))
    );
    println!(
        "save                 {:.3} s ({})",
        b.save_seconds,
        human_bytes(b.file_bytes)
    );
    println!(
        "reopen               {:.3} s, then first token {:.3} s ({} prefilled)",
        b.restore_seconds, b.restored_ttft, b.restored_prefilled
    );
    Ok(())
}
