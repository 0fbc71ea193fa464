//! Loads a GGUF file once and reports how long it took and the most memory MLX held, as one
//! JSON line: the measurement `scripts/bench-gguf-load.sh` repeats (it also records the
//! process's peak resident memory).
//!
//!   cargo run --release -p adapt-engine --example gguf_load -- MODEL.gguf [quantized|dense] [f16|f32|bf16]
//!
//! `quantized` (default) keeps quantized weights as MLX groups (as the GPU backends do);
//! `dense` decodes them (as the CPU backend does). The dtype is that of scales and dense
//! weights (default f16).

use std::path::PathBuf;
use std::time::Instant;

use adapt_engine::mlx_rs::{memory, Dtype};
use adapt_engine::{load, LoadOptions, WeightFormat};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: gguf_load MODEL.gguf [quantized|dense] [f16|f32|bf16]")?,
    );
    let dequantize = match args.next().as_deref() {
        None | Some("quantized") => false,
        Some("dense") => true,
        Some(other) => return Err(format!("unknown mode {other}: quantized or dense").into()),
    };
    let dtype = match args.next().as_deref() {
        None | Some("f16") => Dtype::Float16,
        Some("f32") => Dtype::Float32,
        Some("bf16") => Dtype::Bfloat16,
        Some(other) => return Err(format!("unknown dtype {other}: f16, f32 or bf16").into()),
    };
    let started = Instant::now();
    let options = LoadOptions {
        format: Some(WeightFormat { dtype, dequantize }),
        ..LoadOptions::default()
    };
    let lm = load(&path, &options)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"seconds\": {seconds:.3}, \"mlx_peak_bytes\": {}, \"mlx_active_bytes\": {}, \
         \"file_bytes\": {}, \"parameters\": {}, \"loaded_as\": \"{}\"}}",
        memory::peak_memory()?,
        memory::active_memory()?,
        std::fs::metadata(&path)?.len(),
        lm.info.n_params,
        lm.info.loaded_as,
    );
    Ok(())
}
