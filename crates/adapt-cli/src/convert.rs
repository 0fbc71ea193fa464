//! `adapt convert` (GGUF → MLX folder) and `adapt quantize` (folder → re-quantized or
//! dequantized folder, with its size and quality cost).

use std::path::PathBuf;
use std::time::Instant;

use adapt_api::{ApiError, ConvertReport, ErrorCode, QuantSpec, QuantizeTarget};
use anyhow::Result;
use clap::Args;

use crate::output::human_bytes;

#[derive(Args)]
pub struct ConvertArgs {
    /// The GGUF file (F32, F16, BF16, Q8_0, Q4_0 or Q4_1 tensors).
    gguf: PathBuf,
    /// The model folder to write (must not exist yet).
    out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct QuantizeArgs {
    /// The model folder (config.json + safetensors).
    src: PathBuf,
    /// The model folder to write (must not exist yet).
    out: PathBuf,
    /// Bits per weight: 4 or 8.
    #[arg(long, default_value_t = 4)]
    bits: i32,
    /// Weights sharing one scale and bias: 32, 64 or 128.
    #[arg(long, default_value_t = 64)]
    group_size: i32,
    /// Write float weights instead (undo quantization).
    #[arg(long, conflicts_with_all = ["bits", "group_size"])]
    dequantize: bool,
    /// Skip the quality measurement (it loads both models).
    #[arg(long)]
    no_quality: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn step(started: Instant) -> impl FnMut(&str) {
    move |s: &str| eprintln!("[{:>5.1}s] {s} …", started.elapsed().as_secs_f64())
}

pub fn convert(args: &ConvertArgs) -> Result<()> {
    let adapt = crate::output::start()?;
    let report = adapt.convert_model(&args.gguf, &args.out, step(Instant::now()))?;
    print(&report, args.json)
}

pub fn quantize(args: &QuantizeArgs) -> Result<()> {
    if !args.dequantize
        && (![4, 8].contains(&args.bits) || ![32, 64, 128].contains(&args.group_size))
    {
        let message = format!(
            "{} bits with groups of {} is not offered; use --bits 4 or 8 and --group-size 32, \
             64 or 128",
            args.bits, args.group_size
        );
        return Err(ApiError::new(ErrorCode::QuantizeUnsupported, message).into());
    }
    let adapt = crate::output::start()?;
    let target = if args.dequantize {
        QuantizeTarget::Dequantize
    } else {
        QuantizeTarget::Quantize(QuantSpec {
            group_size: args.group_size,
            bits: args.bits,
        })
    };
    let report = adapt.quantize_model(
        &args.src,
        &args.out,
        target,
        !args.no_quality,
        step(Instant::now()),
    )?;
    print(&report, args.json)
}

fn print(r: &ConvertReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!("Wrote {} ({})", r.output.display(), r.quantization);
    println!(
        "  weights: {} → {} ({:.2}×), {} tensors, {:.1} s",
        human_bytes(r.bytes_before),
        human_bytes(r.bytes_after),
        r.bytes_after as f64 / r.bytes_before.max(1) as f64,
        r.tensors,
        r.seconds
    );
    if let (Some(kl), Some(before), Some(after)) =
        (r.mean_kl, r.perplexity_before, r.perplexity_after)
    {
        println!(
            "  quality on a fixed text: mean KL divergence {kl:.4} nats/token, perplexity \
             {before:.2} → {after:.2}"
        );
    }
    Ok(())
}
