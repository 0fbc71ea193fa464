//! Whether a model fits in memory, for chat and for LoRA training, with the assumptions the
//! estimate rests on (shown to the person beside the verdict).

use serde::Serialize;

use crate::Description;

/// System memory, from `sysinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Memory {
    pub total: u64,
    pub available: u64,
}

impl Memory {
    pub fn current() -> Memory {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        Memory {
            total: sys.total_memory(),
            available: sys.available_memory(),
        }
    }
}

/// The workload an estimate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FitOptions {
    /// Chat context length in tokens (capped at the model's own).
    pub context: u64,
    /// Training batch size and sequence length.
    pub batch: u64,
    pub seq_len: u64,
    /// LoRA rank and how many of the last layers get adapters (on q and v projections).
    pub lora_rank: u64,
    pub lora_layers: u64,
}

impl Default for FitOptions {
    /// mlx-lm's LoRA defaults (rank 8, 16 layers, batch 4) with 512-token sequences, and a
    /// 4096-token chat context.
    fn default() -> Self {
        FitOptions {
            context: 4096,
            batch: 4,
            seq_len: 512,
            lora_rank: 8,
            lora_layers: 16,
        }
    }
}

/// How an estimate compares with the machine's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the memory available now.
    Fits,
    /// More than is free now, but within three quarters of the total (what the GPU may use
    /// of unified memory): close other apps.
    Tight,
    TooBig,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Verdict::Fits => "fits",
            Verdict::Tight => "tight",
            Verdict::TooBig => "too big",
        })
    }
}

/// One estimate: its total, its parts, the verdict and its assumptions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Estimate {
    pub bytes: u64,
    pub verdict: Verdict,
    /// (what, bytes), adding up to `bytes`.
    pub parts: Vec<(String, u64)>,
    pub assumptions: Vec<String>,
}

/// Chat and training estimates for one model on one machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Fit {
    pub memory: Memory,
    pub chat: Estimate,
    pub train: Estimate,
}

const MIB: u64 = 1 << 20;
/// The runtime itself (MLX, tokenizer, buffers).
const RUNTIME: u64 = 256 * MIB;

fn verdict(bytes: u64, memory: Memory) -> Verdict {
    if bytes <= memory.available {
        Verdict::Fits
    } else if bytes <= memory.total / 4 * 3 {
        Verdict::Tight
    } else {
        Verdict::TooBig
    }
}

fn estimate(parts: Vec<(String, u64)>, assumptions: Vec<String>, memory: Memory) -> Estimate {
    let bytes = parts.iter().map(|(_, b)| b).sum();
    Estimate {
        bytes,
        verdict: verdict(bytes, memory),
        parts,
        assumptions,
    }
}

/// Estimates chat and LoRA-training memory for `model`. Without the model's shape (an
/// unreadable config), only the weights and the runtime are counted, and the assumptions say
/// so.
pub fn fit(model: &Description, memory: Memory, options: &FitOptions) -> Fit {
    let weights = model.weights_bytes;
    let overhead = weights / 10 + RUNTIME;
    let stored = "weights held as stored (quantized weights stay quantized)".to_string();
    let overhead_note = "10% of the weights + 256 MiB for the runtime and buffers".to_string();
    let Some(s) = model.shape else {
        let unknown = "the model's shape is unknown: KV cache and activations not counted";
        let parts = vec![("weights".into(), weights), ("overhead".into(), overhead)];
        let assumptions = vec![stored, overhead_note, unknown.to_string()];
        return Fit {
            memory,
            chat: estimate(parts.clone(), assumptions.clone(), memory),
            train: estimate(parts, assumptions, memory),
        };
    };
    let context = s
        .context
        .map_or(options.context, |c| c.min(options.context));
    // K and V, per layer, per KV head, per position, in f16.
    let kv = 2 * s.layers * s.kv_heads * s.head_dim * context * 2;
    let chat = estimate(
        vec![
            ("weights".into(), weights),
            ("kv cache".into(), kv),
            ("overhead".into(), overhead),
        ],
        vec![
            stored.clone(),
            format!("a {context}-token context with its KV cache in f16"),
            overhead_note.clone(),
        ],
        memory,
    );

    let layers = options.lora_layers.min(s.layers);
    let q_out = s.heads * s.head_dim;
    let v_out = s.kv_heads * s.head_dim;
    let adapter_params = layers * options.lora_rank * ((s.hidden + q_out) + (s.hidden + v_out));
    // f32 weights, gradients and two AdamW moments.
    let adapter = adapter_params * 16;
    let (b, t) = (options.batch, options.seq_len);
    // Per layer, in 16-bit: t·b·h·(34 + 5·heads·t/h) bytes (activations kept for the
    // backward pass, no checkpointing).
    let per_layer = t * b * s.hidden * 34 + 5 * s.heads * t * t * b;
    let activations = per_layer * s.layers;
    // Logits and their gradient in f32.
    let logits = b * t * s.vocab * 4 * 2;
    let train = estimate(
        vec![
            ("weights".into(), weights),
            ("adapter + optimizer".into(), adapter),
            ("activations".into(), activations),
            ("logits".into(), logits),
            ("overhead".into(), overhead),
        ],
        vec![
            stored,
            format!(
                "LoRA rank {} on the q and v projections of {layers} layers ({adapter_params} \
                 parameters; f32 weights, gradients and AdamW moments)",
                options.lora_rank
            ),
            format!(
                "batch {b} × {t} tokens, activations in 16-bit kept for the backward pass \
                 (no gradient checkpointing)"
            ),
            "logits and their gradient in f32".to_string(),
            overhead_note,
        ],
        memory,
    );
    Fit {
        memory,
        chat,
        train,
    }
}
