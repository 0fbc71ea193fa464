//! Loading GGUF files of the simple tensor types (F32, F16, Q8_0, Q4_0, Q4_1) on a tiny Llama
//! whose rows are shorter than a K-quant block: weights encoded the way llama.cpp encodes
//! them, loaded through `adapt_engine::load`, and its logits compared with a dense model built
//! from the same values decoded here. This checks the tensor reading and its exact MLX
//! mapping, our tensor names, the metadata mapping and both ways of holding weights
//! (dequantized, quantized kept). Tiny Qwen3-MoE and Mixtral files do the same for routers and
//! experts (3-D tensors, or one tensor per expert as older Mixtral files store them), quantized
//! experts running as gathered quantized matmuls. The K-quants are checked on files llama.cpp
//! quantizes (`gguf_llama_cpp.rs`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use adapt_engine::mlx_rs::{Array, Dtype};
use adapt_engine::models::{QuantConfig, Weights};
use adapt_engine::testing::{max_abs_diff, tiny_llama_args, F32};
use adapt_engine::{load, LoadOptions, Model, ModelArgs, WeightFormat};
use adapt_gguf::test_util::GgufBuilder;
use adapt_gguf::{GgmlType, GgufArray, GgufValue};
use half::f16;

static MLX: Mutex<()> = Mutex::new(());

/// Encodes `x` as `ty` (blocks of 32 for the quantized types, as ggml does) and returns the
/// bytes with the values a decoder must get back.
fn encode(ty: GgmlType, x: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let mut bytes = Vec::new();
    let mut decoded = Vec::new();
    let h = |v: f32| f16::from_f32(v);
    match ty {
        GgmlType::F32 => {
            x.iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
            decoded.extend_from_slice(x);
        }
        GgmlType::F16 => {
            for v in x {
                bytes.extend_from_slice(&h(*v).to_le_bytes());
                decoded.push(h(*v).to_f32());
            }
        }
        GgmlType::Q8_0 => {
            for block in x.chunks(32) {
                let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = h(amax / 127.0);
                bytes.extend_from_slice(&d.to_le_bytes());
                let inv = if d.to_f32() == 0.0 {
                    0.0
                } else {
                    1.0 / d.to_f32()
                };
                for v in block {
                    let q = (v * inv).round().clamp(-127.0, 127.0) as i8;
                    bytes.push(q as u8);
                    decoded.push(q as f32 * d.to_f32());
                }
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            for block in x.chunks(32) {
                let (min, max) = block
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
                let q: Vec<u8>;
                let (d, m);
                if ty == GgmlType::Q4_0 {
                    let signed_max = if max.abs() > min.abs() { max } else { min };
                    d = h(signed_max / -8.0);
                    let inv = 1.0 / d.to_f32();
                    q = block
                        .iter()
                        .map(|v| ((v * inv + 8.5) as i32).clamp(0, 15) as u8)
                        .collect();
                    m = None;
                    bytes.extend_from_slice(&d.to_le_bytes());
                } else {
                    d = h((max - min) / 15.0);
                    let inv = 1.0 / d.to_f32();
                    q = block
                        .iter()
                        .map(|v| (((v - min) * inv + 0.5) as i32).clamp(0, 15) as u8)
                        .collect();
                    m = Some(h(min));
                    bytes.extend_from_slice(&d.to_le_bytes());
                    bytes.extend_from_slice(&h(min).to_le_bytes());
                }
                for j in 0..16 {
                    bytes.push(q[j] | (q[j + 16] << 4));
                }
                for &qi in &q {
                    decoded.push(match m {
                        None => (qi as f32 - 8.0) * d.to_f32(),
                        Some(m) => qi as f32 * d.to_f32() + m.to_f32(),
                    });
                }
            }
        }
        other => panic!("no encoder for {other}"),
    }
    (bytes, decoded)
}

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// GPT-2's byte ↔ printable-character mapping, the vocabulary of a byte-level BPE.
fn byte_tokens() -> Vec<String> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                extra += 1;
                255 + extra
            };
            char::from_u32(c).unwrap().to_string()
        })
        .collect()
}

/// Writes a tiny Llama GGUF with projections of type `ty`; returns its path and the dense
/// reference model holding the decoded values.
fn write_model(dir: &Path, ty: GgmlType, tied: bool) -> (std::path::PathBuf, Model) {
    let mut args: ModelArgs = tiny_llama_args();
    args.vocab_size = 258;
    args.rope_traditional = true;
    args.tie_word_embeddings = tied;
    let (h, i) = (args.hidden_size as u64, args.intermediate_size as u64);
    let (q, kv) = (
        (args.num_attention_heads * args.head_dim) as u64,
        (args.num_key_value_heads * args.head_dim) as u64,
    );
    let mut tokens = byte_tokens();
    tokens.push("<s>".into());
    tokens.push("</s>".into());
    let mut types = vec![1i32; 256];
    types.extend([3, 3]);
    let mut gguf = GgufBuilder::new()
        .kv_str("general.architecture", "llama")
        .kv(
            "llama.block_count",
            GgufValue::U32(args.num_hidden_layers as u32),
        )
        .kv("llama.embedding_length", GgufValue::U32(h as u32))
        .kv("llama.feed_forward_length", GgufValue::U32(i as u32))
        .kv(
            "llama.attention.head_count",
            GgufValue::U32(args.num_attention_heads as u32),
        )
        .kv(
            "llama.attention.head_count_kv",
            GgufValue::U32(args.num_key_value_heads as u32),
        )
        .kv("llama.rope.freq_base", GgufValue::F32(args.rope_theta))
        .kv(
            "llama.attention.layer_norm_rms_epsilon",
            GgufValue::F32(args.rms_norm_eps),
        )
        .kv(
            "llama.context_length",
            GgufValue::U32(args.max_position_embeddings as u32),
        )
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_str("tokenizer.ggml.pre", "gpt2")
        .kv_strings("tokenizer.ggml.tokens", &tokens)
        .kv(
            "tokenizer.ggml.token_type",
            GgufValue::Array(GgufArray::I32(types)),
        )
        .kv_strings::<&str>("tokenizer.ggml.merges", &[])
        .kv("tokenizer.ggml.bos_token_id", GgufValue::U32(256))
        .kv("tokenizer.ggml.eos_token_id", GgufValue::U32(257));
    let mut reference = HashMap::new();
    let mut seed = 0;
    let mut add =
        |gguf: GgufBuilder, gguf_name: &str, hf: &str, out: u64, inp: u64, ty: GgmlType| {
            seed += 1;
            let x = values((out * inp) as usize, seed, (inp as f32).powf(-0.5) * 1.5);
            let (bytes, decoded) = encode(ty, &x);
            reference.insert(
                format!("{hf}.weight"),
                Array::from_slice(&decoded, &[out as i32, inp as i32]),
            );
            gguf.tensor_with_data(&format!("{gguf_name}.weight"), &[inp, out], ty, bytes)
        };
    // Norms are always F32 in GGUF files; collected here, added to the reference below.
    let norms: std::cell::RefCell<Vec<(String, Vec<f32>)>> = Default::default();
    for l in 0..args.num_hidden_layers {
        let (b, p) = (format!("blk.{l}"), format!("model.layers.{l}"));
        for (g, hfn, out, inp) in [
            ("attn_q", "self_attn.q_proj", q, h),
            ("attn_k", "self_attn.k_proj", kv, h),
            ("attn_v", "self_attn.v_proj", kv, h),
            ("attn_output", "self_attn.o_proj", h, q),
            ("ffn_gate", "mlp.gate_proj", i, h),
            ("ffn_up", "mlp.up_proj", i, h),
            ("ffn_down", "mlp.down_proj", h, i),
        ] {
            gguf = add(
                gguf,
                &format!("{b}.{g}"),
                &format!("{p}.{hfn}"),
                out,
                inp,
                ty,
            );
        }
        for (g, hfn) in [
            ("attn_norm", "input_layernorm"),
            ("ffn_norm", "post_attention_layernorm"),
        ] {
            let x: Vec<f32> = values(h as usize, 500 + l as u64, 0.2)
                .iter()
                .map(|v| 1.0 + v)
                .collect();
            let (bytes, _) = encode(GgmlType::F32, &x);
            norms.borrow_mut().push((format!("{p}.{hfn}.weight"), x));
            gguf = gguf.tensor_with_data(&format!("{b}.{g}.weight"), &[h], GgmlType::F32, bytes);
        }
    }
    gguf = add(gguf, "token_embd", "model.embed_tokens", 258, h, ty);
    if !tied {
        gguf = add(gguf, "output", "lm_head", 258, h, ty);
    }
    let x = vec![1.0f32; h as usize];
    gguf = gguf.tensor_with_data(
        "output_norm.weight",
        &[h],
        GgmlType::F32,
        encode(GgmlType::F32, &x).0,
    );
    norms.borrow_mut().push(("model.norm.weight".into(), x));
    for (name, x) in norms.into_inner() {
        reference.insert(name, Array::from_slice(&x, &[h as i32]));
    }
    let path = dir.join(format!(
        "tiny-{ty}-{}.gguf",
        if tied { "tied" } else { "head" }
    ));
    std::fs::write(&path, gguf.build()).unwrap();
    let mut weights = Weights::new(
        Path::new("<reference>"),
        reference,
        QuantConfig::default(),
        F32,
    );
    (path, Model::new(args, &mut weights).unwrap())
}

#[test]
fn every_supported_tensor_type_loads_to_the_values_llama_cpp_encoded() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let ids = Array::from_slice(&[72i32, 101, 108, 108, 111, 256, 33, 10], &[1, 8]);
    for (ty, tied) in [
        (GgmlType::F32, false),
        (GgmlType::F16, true),
        (GgmlType::Q8_0, false),
        (GgmlType::Q4_0, true),
        (GgmlType::Q4_1, false),
    ] {
        let (path, reference) = write_model(dir.path(), ty, tied);
        let expected = reference.forward(&ids, &mut reference.new_cache()).unwrap();
        let quantized = matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1);
        // Dequantized at load (1e-4), and quantized kept: MLX's quantized matmul (1e-3).
        for (keep_quantized, tolerance) in [(false, 1e-4), (true, 1e-3)] {
            if keep_quantized && !quantized {
                continue;
            }
            let options = LoadOptions {
                format: Some(WeightFormat {
                    dtype: Dtype::Float32,
                    dequantize: !keep_quantized,
                }),
                keep_quantized: false,
            };
            let lm = load(&path, &options).unwrap();
            assert_eq!(lm.model.args.tie_word_embeddings, tied);
            assert_eq!(lm.info.file_quantization, ty.to_string());
            let got = lm.model.forward(&ids, &mut lm.model.new_cache()).unwrap();
            let d = max_abs_diff(&got, &expected);
            assert!(
                d < tolerance,
                "{ty} keep_quantized={keep_quantized}: max |Δlogit| {d}"
            );
            assert_eq!(
                lm.tokenizer.encode("Hi!", false).unwrap(),
                vec![72, 105, 33]
            );
        }
    }
}

/// A tiny mixture-of-experts GGUF of `arch` — `qwen3moe`, or `llama` with experts (Mixtral),
/// whose experts are stored one by one as older files do (`blk.0.ffn_gate.3.weight`) — with
/// its router and experts stored as `ty`; returns its path and the dense reference model
/// holding the decoded values.
fn write_moe(dir: &Path, arch: &str, ty: GgmlType) -> (std::path::PathBuf, Model) {
    let (h, e, ff, vocab, heads, kv, hd) = (64u64, 4u64, 64u64, 96u64, 4u64, 2u64, 16u64);
    let qwen = arch == "qwen3moe";
    let key = |k: &str| format!("{arch}.{k}");
    let width = if qwen {
        "expert_feed_forward_length"
    } else {
        "feed_forward_length"
    };
    let mut gguf = GgufBuilder::new().kv_str("general.architecture", arch);
    for (k, v) in [
        ("block_count", 2),
        ("embedding_length", h),
        ("attention.head_count", heads),
        ("attention.head_count_kv", kv),
        ("attention.key_length", hd),
        ("expert_count", e),
        ("expert_used_count", 2),
        (width, ff),
        ("vocab_size", vocab),
    ] {
        gguf = gguf.kv(&key(k), GgufValue::U32(v as u32));
    }
    // A loadable file states its tokenizer; this one only needs to be there.
    let tokens: Vec<String> = (0..vocab).map(|t| format!("t{t}")).collect();
    gguf = gguf
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_strings("tokenizer.ggml.tokens", &tokens);
    let mut reference = HashMap::new();
    let mut seed = 100;
    // A tensor `[.., out, in]`; stacked experts are written one by one unless `qwen`.
    let mut add = |g: GgufBuilder, name: &str, hf: &str, shape: &[u64], ty: GgmlType| {
        seed += 1;
        let inp = *shape.last().unwrap();
        let x = values(
            shape.iter().product::<u64>() as usize,
            seed,
            (inp as f32).powf(-0.5),
        );
        let (bytes, decoded) = encode(ty, &x);
        let dims: Vec<i32> = shape.iter().map(|&d| d as i32).collect();
        reference.insert(format!("{hf}.weight"), Array::from_slice(&decoded, &dims));
        let ggml: Vec<u64> = shape.iter().rev().copied().collect();
        if shape.len() < 3 || qwen {
            return g.tensor_with_data(&format!("{name}.weight"), &ggml, ty, bytes);
        }
        let per_expert = bytes.len() / shape[0] as usize;
        let one = name.replace("_exps", "");
        (0..shape[0] as usize).fold(g, |g, x| {
            let part = bytes[x * per_expert..(x + 1) * per_expert].to_vec();
            g.tensor_with_data(&format!("{one}.{x}.weight"), &ggml[..2], ty, part)
        })
    };
    let f = GgmlType::F32;
    for l in 0..2 {
        let (b, p) = (format!("blk.{l}"), format!("model.layers.{l}"));
        let mut layer = vec![
            ("attn_q", "self_attn.q_proj", vec![heads * hd, h], f),
            ("attn_k", "self_attn.k_proj", vec![kv * hd, h], f),
            ("attn_v", "self_attn.v_proj", vec![kv * hd, h], f),
            ("attn_output", "self_attn.o_proj", vec![h, heads * hd], f),
            ("attn_norm", "input_layernorm", vec![h], f),
            ("ffn_norm", "post_attention_layernorm", vec![h], f),
            ("ffn_gate_inp", "mlp.gate", vec![e, h], ty),
            (
                "ffn_gate_exps",
                "mlp.switch_mlp.gate_proj",
                vec![e, ff, h],
                ty,
            ),
            ("ffn_up_exps", "mlp.switch_mlp.up_proj", vec![e, ff, h], ty),
            (
                "ffn_down_exps",
                "mlp.switch_mlp.down_proj",
                vec![e, h, ff],
                ty,
            ),
        ];
        if qwen {
            layer.push(("attn_q_norm", "self_attn.q_norm", vec![hd], f));
            layer.push(("attn_k_norm", "self_attn.k_norm", vec![hd], f));
        }
        for (g, hf, shape, t) in layer {
            gguf = add(gguf, &format!("{b}.{g}"), &format!("{p}.{hf}"), &shape, t);
        }
    }
    gguf = add(gguf, "token_embd", "model.embed_tokens", &[vocab, h], ty);
    gguf = add(gguf, "output_norm", "model.norm", &[h], f);
    let path = dir.join(format!("moe-{arch}-{ty}.gguf"));
    std::fs::write(&path, gguf.build()).unwrap();
    let (_, args, _) = adapt_engine::load::gguf::read(&path, None).unwrap();
    let mut weights = Weights::new(Path::new("<ref>"), reference, QuantConfig::default(), F32);
    (path, Model::new(args, &mut weights).unwrap())
}

#[test]
fn quantized_experts_load_and_run_quantized_or_dequantized() {
    let _mlx = MLX.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let ids = Array::from_slice(&[3i32, 17, 42, 5, 88, 61, 7, 2, 19, 30, 64, 1], &[1, 12]);
    for (arch, ty) in [
        ("qwen3moe", GgmlType::Q8_0),
        ("qwen3moe", GgmlType::Q4_0),
        ("llama", GgmlType::Q4_1),
        ("llama", GgmlType::F16),
    ] {
        let (path, reference) = write_moe(dir.path(), arch, ty);
        let moe = reference.args.moe.clone().expect("a mixture of experts");
        assert_eq!((moe.num_experts, moe.experts_per_token), (4, 2));
        let expected = reference.forward(&ids, &mut reference.new_cache()).unwrap();
        for (dequantize, tolerance) in [(true, 1e-4), (false, 1e-3)] {
            let format = WeightFormat {
                dtype: Dtype::Float32,
                dequantize,
            };
            let (_, args, arrays) = adapt_engine::load::gguf::read(&path, None).unwrap();
            let mut w = Weights::new(&path, arrays, QuantConfig::default(), format);
            let model = Model::new(args, &mut w).unwrap();
            let quantized = ty != GgmlType::F16 && !dequantize;
            assert_eq!(model.is_quantized(), quantized, "{arch} {ty}");
            let got = model.forward(&ids, &mut model.new_cache()).unwrap();
            let d = max_abs_diff(&got, &expected);
            let what = format!("{arch} {ty} dequantize={dequantize}");
            assert!(d < tolerance, "{what}: max |Δlogit| {d}");
        }
    }
}
