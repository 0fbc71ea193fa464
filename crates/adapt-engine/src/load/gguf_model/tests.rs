use std::collections::HashMap;

use adapt_gguf::test_util::GgufBuilder;
use adapt_gguf::{GgufArray, GgufFile, GgufValue};
use serde_json::Value;

use super::{hf_config, hf_name};
use crate::models::RopeScaling;

#[test]
fn gguf_names_map_to_the_decoders_names() {
    for (arch, gguf, hf) in [
        ("llama", "token_embd.weight", "model.embed_tokens.weight"),
        ("llama", "output_norm.weight", "model.norm.weight"),
        ("llama", "output.weight", "lm_head.weight"),
        (
            "llama",
            "blk.0.attn_q.weight",
            "model.layers.0.self_attn.q_proj.weight",
        ),
        (
            "llama",
            "blk.12.attn_output.scales",
            "model.layers.12.self_attn.o_proj.scales",
        ),
        (
            "llama",
            "blk.3.ffn_down.biases",
            "model.layers.3.mlp.down_proj.biases",
        ),
        (
            "llama",
            "blk.3.attn_norm.weight",
            "model.layers.3.input_layernorm.weight",
        ),
        (
            "llama",
            "blk.3.ffn_norm.weight",
            "model.layers.3.post_attention_layernorm.weight",
        ),
        (
            "llama",
            "blk.1.ffn_gate_exps.weight",
            "model.layers.1.mlp.switch_mlp.gate_proj.weight",
        ),
        (
            "llama",
            "blk.1.ffn_gate_inp.weight",
            "model.layers.1.mlp.gate.weight",
        ),
        (
            "gemma2",
            "blk.3.ffn_norm.weight",
            "model.layers.3.pre_feedforward_layernorm.weight",
        ),
        (
            "gemma2",
            "blk.3.post_attention_norm.weight",
            "model.layers.3.post_attention_layernorm.weight",
        ),
        (
            "gemma3",
            "blk.0.post_ffw_norm.weight",
            "model.layers.0.post_feedforward_layernorm.weight",
        ),
        (
            "qwen3",
            "blk.2.attn_k_norm.weight",
            "model.layers.2.self_attn.k_norm.weight",
        ),
        (
            "qwen2",
            "blk.2.attn_q.bias",
            "model.layers.2.self_attn.q_proj.bias",
        ),
        (
            "phi3",
            "blk.0.attn_qkv.weight",
            "model.layers.0.self_attn.qkv_proj.weight",
        ),
        (
            "phi3",
            "blk.0.ffn_up.weight",
            "model.layers.0.mlp.gate_up_proj.weight",
        ),
        (
            "gpt2",
            "position_embd.weight",
            "model.embed_positions.weight",
        ),
        (
            "gpt2",
            "blk.1.ffn_up.bias",
            "model.layers.1.mlp.up_proj.bias",
        ),
        (
            "llama",
            "blk.1.ffn_down.7.weight",
            "model.layers.1.mlp.experts.7.down_proj.weight",
        ),
        ("llama", "rope_freqs.weight", "rope_freqs.weight"),
        (
            "llama",
            "blk.3.something_else.weight",
            "blk.3.something_else.weight",
        ),
    ] {
        assert_eq!(hf_name(arch, gguf), hf, "{arch} {gguf}");
    }
}

/// A GGUF file with `arch`'s shape metadata (`layers` blocks, 8 heads of 32) plus `extra`.
fn file(arch: &str, layers: u32, extra: &[(&str, GgufValue)]) -> (tempfile::TempDir, GgufFile) {
    let key = |k: &str| format!("{arch}.{k}");
    let mut b = GgufBuilder::new()
        .kv_str("general.architecture", arch)
        .kv(&key("block_count"), GgufValue::U32(layers))
        .kv(&key("embedding_length"), GgufValue::U32(512))
        .kv(&key("feed_forward_length"), GgufValue::U32(1024))
        .kv(&key("attention.head_count"), GgufValue::U32(8))
        .kv(&key("attention.key_length"), GgufValue::U32(32))
        .kv(&key("vocab_size"), GgufValue::U32(100));
    for (k, v) in extra {
        b = b.kv(&key(k), v.clone());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, b.build()).unwrap();
    let g = GgufFile::open(&path).unwrap();
    (dir, g)
}

fn config(arch: &str, layers: u32, extra: &[(&str, GgufValue)]) -> Value {
    let (_dir, g) = file(arch, layers, extra);
    hf_config(&g, &HashMap::new()).unwrap()
}

#[test]
fn gemmas_attention_scale_follows_llama_cpp() {
    // Not stated: the head size, but hidden / heads for the 27B models.
    assert_eq!(config("gemma2", 26, &[])["query_pre_attn_scalar"], 32.0);
    assert_eq!(config("gemma2", 46, &[])["query_pre_attn_scalar"], 64.0);
    assert_eq!(config("gemma3", 62, &[])["query_pre_attn_scalar"], 64.0);
    // Stated: its value.
    let scale = [("attention.scale", GgufValue::F32(0.125))];
    assert_eq!(config("gemma3", 4, &scale)["query_pre_attn_scalar"], 64.0);
}

#[test]
fn gemma3s_sliding_window_pattern_is_a_period_or_per_layer_flags() {
    assert_eq!(config("gemma3", 12, &[])["sliding_window_pattern"], 6);
    let period = [("attention.sliding_window_pattern", GgufValue::U32(4))];
    assert_eq!(config("gemma3", 12, &period)["sliding_window_pattern"], 4);
    let flags = |f: Vec<u8>| {
        let array = GgufValue::Array(GgufArray::Bool(f.into_iter().map(|b| b == 1).collect()));
        [("attention.sliding_window_pattern", array)]
    };
    let c = config("gemma3", 6, &flags(vec![1, 1, 0, 1, 1, 0]));
    assert_eq!(c["sliding_window_pattern"], 3);
    let (_dir, g) = file("gemma3", 6, &flags(vec![1, 0, 0, 1, 1, 0]));
    let err = hf_config(&g, &HashMap::new()).unwrap_err().to_string();
    assert!(err.contains("sliding_window_pattern"), "{err}");
}

#[test]
fn rope_scaling_metadata_becomes_config_json_rope_scaling() {
    let yarn = [
        ("rope.scaling.type", GgufValue::String("yarn".into())),
        ("rope.scaling.factor", GgufValue::F32(4.0)),
        (
            "rope.scaling.original_context_length",
            GgufValue::U32(32768),
        ),
    ];
    let c = config("qwen3", 2, &yarn);
    assert_eq!(c["rope_scaling"]["type"], "yarn");
    assert_eq!(c["rope_scaling"]["original_max_position_embeddings"], 32768);
    let odd = [("rope.scaling.type", GgufValue::String("dynamic".into()))];
    let (_dir, g) = file("llama", 2, &odd);
    let err = hf_config(&g, &HashMap::new()).unwrap_err().to_string();
    assert!(
        err.contains("'dynamic'") && err.contains("llama.rope.scaling.type"),
        "{err}"
    );
}

#[test]
fn llama_3_factors_are_recognized_as_their_setting() {
    // Llama 3.1 8B: head size 128, base 500000, factor 8, low 1, high 4, original 8192.
    let published = RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192.0,
    };
    let factors = published.pair_factors(128, 500_000.0).unwrap();
    let found = RopeScaling::llama3_from_factors(&factors, 128, 500_000.0).unwrap();
    assert_eq!(found, published);
    // Factors of another shape are not a Llama 3 setting.
    let mut odd = factors.clone();
    odd[0] = 3.0;
    assert_eq!(RopeScaling::llama3_from_factors(&odd, 128, 500_000.0), None);
}

#[test]
fn unknown_gguf_architectures_list_the_known_ones() {
    let (_dir, g) = file("bert", 2, &[]);
    let err = hf_config(&g, &HashMap::new()).unwrap_err();
    assert_eq!(err.code(), "model.unsupported_architecture");
    let message = err.to_string();
    for arch in ["qwen3moe", "gemma3", "gpt2", "phi3"] {
        assert!(message.contains(arch), "{message}");
    }
}
