//! Tiny random models for fast tests, here and in other crates: the real architecture code
//! with small shapes and seeded random weights, optionally quantized.

use std::collections::HashMap;
use std::path::Path;

use mlx_rs::{random, Array, Dtype};

use crate::error::Result;
use crate::models::{Model, ModelArgs, QuantConfig, WeightFormat, Weights};

/// A small Llama shape: 2 layers, 64 hidden units, 4 query and 2 key/value heads.
pub fn tiny_llama_args() -> ModelArgs {
    ModelArgs {
        architecture: "llama".into(),
        hidden_size: 64,
        intermediate_size: 128,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 16,
        vocab_size: 256,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_dims: 16,
        max_position_embeddings: 512,
        ..ModelArgs::default()
    }
}

/// A model of shape `args` with seeded random weights (see [`random_weights`]), held as
/// `format` says.
pub fn random_model(
    args: &ModelArgs,
    seed: u64,
    quantize: Option<i32>,
    format: WeightFormat,
) -> Result<Model> {
    let arrays = random_weights(args, seed, quantize)?;
    let mut weights = Weights::new(
        Path::new("<random>"),
        arrays,
        QuantConfig::default(),
        format,
    );
    Model::new(args.clone(), &mut weights)
}

/// Seeded random weights of shape `args`, with Hugging Face names; with
/// `quantize = Some(bits)` every projection is MLX-quantized (group 32), as a 4- or 8-bit
/// checkpoint stores it.
pub fn random_weights(
    args: &ModelArgs,
    seed: u64,
    quantize: Option<i32>,
) -> Result<HashMap<String, Array>> {
    let mut arrays = HashMap::new();
    let mut n = 0u64;
    let mut next = |shape: &[i32], scale: f32| -> Result<Array> {
        n += 1;
        let k = random::key(seed.wrapping_mul(1_000_003).wrapping_add(n))?;
        Ok(random::normal::<f32>(shape, None, scale, &k)?)
    };
    let (h, i) = (args.hidden_size, args.intermediate_size);
    let q = args.num_attention_heads * args.head_dim;
    let kv = args.num_key_value_heads * args.head_dim;
    let mut put = |name: String, a: Array| {
        arrays.insert(name, a);
    };
    let mut linear = |name: String, out: i32, inp: i32, put: &mut dyn FnMut(String, Array)| {
        let w = next(&[out, inp], (inp as f32).powf(-0.5))?;
        match quantize {
            Some(bits) => {
                let (wq, s, b) = mlx_rs::ops::quantize(&w, 32, bits)?;
                put(format!("{name}.weight"), wq);
                put(format!("{name}.scales"), s);
                put(format!("{name}.biases"), b);
            }
            None => put(format!("{name}.weight"), w),
        }
        Ok::<_, crate::EngineError>(())
    };
    for l in 0..args.num_hidden_layers {
        let p = format!("model.layers.{l}");
        linear(format!("{p}.self_attn.q_proj"), q, h, &mut put)?;
        linear(format!("{p}.self_attn.k_proj"), kv, h, &mut put)?;
        linear(format!("{p}.self_attn.v_proj"), kv, h, &mut put)?;
        linear(format!("{p}.self_attn.o_proj"), h, q, &mut put)?;
        linear(format!("{p}.mlp.gate_proj"), i, h, &mut put)?;
        linear(format!("{p}.mlp.up_proj"), i, h, &mut put)?;
        linear(format!("{p}.mlp.down_proj"), h, i, &mut put)?;
        put(
            format!("{p}.input_layernorm.weight"),
            Array::ones::<f32>(&[h])?,
        );
        put(
            format!("{p}.post_attention_layernorm.weight"),
            Array::ones::<f32>(&[h])?,
        );
    }
    linear("model.embed_tokens".into(), args.vocab_size, h, &mut put)?;
    if !args.tie_word_embeddings {
        linear("lm_head".into(), args.vocab_size, h, &mut put)?;
    }
    put("model.norm.weight".into(), Array::ones::<f32>(&[h])?);
    Ok(arrays)
}

/// Dense f32, as the tests mostly want.
pub const F32: WeightFormat = WeightFormat {
    dtype: Dtype::Float32,
    dequantize: false,
};

/// Largest absolute element-wise difference of two arrays (for comparing logits).
pub fn max_abs_diff(a: &Array, b: &Array) -> f32 {
    a.subtract(b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max(None))
        .map(|m| m.item_exact::<f32>())
        .unwrap_or(f32::INFINITY)
}

/// A model to chat with in tests: random weights of shape `args` (the vocabulary sized to
/// `tokenizer`'s) with `tokenizer` and its chat template, named `name`.
pub fn tiny_chat_model(
    args: &ModelArgs,
    seed: u64,
    tokenizer: adapt_text::Tokenizer,
    name: &str,
) -> Result<crate::LoadedModel> {
    let args = ModelArgs {
        vocab_size: tokenizer.vocab_size() as i32,
        ..args.clone()
    };
    let model = random_model(&args, seed, None, F32)?;
    let template = tokenizer.chat_template().map(str::to_string);
    crate::load::assemble(
        model,
        tokenizer,
        template.as_deref(),
        Path::new(name),
        name.to_string(),
        "random".into(),
        F32,
        std::time::Instant::now(),
    )
}

/// Writes a model folder (`config.json`, `model.safetensors`, `tokenizer.json`,
/// `tokenizer_config.json`) holding random weights of shape `args`, its vocabulary sized to
/// `tokenizer`'s, that loads like a downloaded model: for tests of shells that load models by
/// path. Returns the folder (`out`, which must not exist yet).
pub fn write_tiny_chat_folder(
    out: &Path,
    args: &ModelArgs,
    seed: u64,
    tokenizer: &adapt_text::Tokenizer,
) -> Result<std::path::PathBuf> {
    let args = ModelArgs {
        vocab_size: tokenizer.vocab_size() as i32,
        ..args.clone()
    };
    let arrays = random_weights(&args, seed, None)?;
    let staging = crate::save::Staging::new(out)?;
    staging.json("config.json", &llama_config(&args, tokenizer, &arrays))?;
    tokenizer.write_hf_files(&staging.tmp, args.max_position_embeddings)?;
    staging.weights(&arrays)?;
    staging.finish()
}

/// [`write_tiny_chat_folder`] with the tokenizer and chat template of the GGUF file `gguf`
/// (tests pass the real SmolLM2's): a tiny model that tokenizes and chats like that one.
pub fn write_tiny_folder_like(gguf: &Path, out: &Path) -> Result<std::path::PathBuf> {
    let file = adapt_gguf::GgufFile::open(gguf).map_err(|e| {
        crate::error::EngineError::InvalidRequest(format!("{}: {e}", gguf.display()))
    })?;
    let tokenizer = adapt_text::Tokenizer::from_gguf(&file).map_err(|e| {
        crate::error::EngineError::InvalidRequest(format!("{}: {e}", gguf.display()))
    })?;
    write_tiny_chat_folder(out, &tiny_llama_args(), 7, &tokenizer)
}

/// The `config.json` of a Hugging Face Llama of shape `args` with these tensors.
fn llama_config(
    args: &ModelArgs,
    tokenizer: &adapt_text::Tokenizer,
    arrays: &HashMap<String, Array>,
) -> serde_json::Value {
    let mut config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": args.hidden_size,
        "intermediate_size": args.intermediate_size,
        "num_hidden_layers": args.num_hidden_layers,
        "num_attention_heads": args.num_attention_heads,
        "num_key_value_heads": args.num_key_value_heads,
        "head_dim": args.head_dim,
        "vocab_size": args.vocab_size,
        "rms_norm_eps": args.rms_norm_eps,
        "rope_theta": args.rope_theta,
        "max_position_embeddings": args.max_position_embeddings,
        "tie_word_embeddings": args.tie_word_embeddings,
        "hidden_act": "silu",
    });
    crate::convert::complete_config(&mut config, tokenizer, arrays);
    config
}
