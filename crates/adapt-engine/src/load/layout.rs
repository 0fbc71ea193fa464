//! The row order of query and key projections. llama.cpp permutes Q/K rows so RoPE can run
//! on interleaved pairs (GGUF's layout); Hugging Face checkpoints rotate halves. A model read
//! from GGUF keeps GGUF's order (`ModelArgs::qk_permuted`, traditional RoPE); converting it to
//! a folder, and adapter files, use Hugging Face's.

use std::collections::HashMap;

use mlx_rs::Array;

use crate::error::Result;
use crate::models::ModelArgs;

/// Reorders the leading axis of a query / key tensor between GGUF's interleaved row order
/// (`[heads, half, 2]`) and Hugging Face's (`[heads, 2, half]`).
pub fn reorder_qk_rows(a: &Array, heads: i32, to_gguf: bool) -> Result<Array> {
    let shape = a.shape().to_vec();
    let half = shape[0] / heads / 2;
    let inner = if to_gguf { [2, half] } else { [half, 2] };
    let mut split = vec![heads, inner[0], inner[1]];
    split.extend_from_slice(&shape[1..]);
    Ok(a.reshape(&split)?.swap_axes(1, 2)?.reshape(&shape)?)
}

/// Puts every layer's query and key tensors (weights, quantization scales and biases, biases)
/// of a GGUF-ordered checkpoint into Hugging Face's row order.
pub fn to_hf_rows(arrays: &mut HashMap<String, Array>, args: &ModelArgs) -> Result<()> {
    for l in 0..args.num_hidden_layers {
        for (proj, heads) in [
            ("q_proj", args.num_attention_heads),
            ("k_proj", args.num_key_value_heads),
        ] {
            for part in ["weight", "scales", "biases", "bias"] {
                let name = format!("model.layers.{l}.self_attn.{proj}.{part}");
                if let Some(a) = arrays.remove(&name) {
                    arrays.insert(name, reorder_qk_rows(&a, heads, false)?);
                }
            }
        }
    }
    Ok(())
}
