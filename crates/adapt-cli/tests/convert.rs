//! `adapt convert` and `adapt quantize` from the command line: a real conversion and
//! quantization, and clear errors (code, file, non-zero exit, no panic) for a truncated GGUF,
//! a folder with a missing shard, and unsupported quantization types.

mod common;

use std::path::Path;
use std::process::Output;

use common::text;

use adapt_gguf::test_util::GgufBuilder;
use adapt_gguf::{GgmlType, GgufValue};
use adapt_testsupport::smollm2_gguf as smollm2;

fn adapt(args: &[&str], data: &Path) -> Output {
    common::run(args, "", data)
}

fn fails_with(out: &Output, code: &str) -> String {
    common::expect_failure(out, code)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn convert_then_quantize_the_real_model() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("smol");
    let out = adapt(&["convert", s(&smollm2()), s(&folder)], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("4-bit (group 32)"),
        "{}",
        text(&out.stdout)
    );
    assert!(folder.join("config.json").is_file());

    let q8 = dir.path().join("smol-q8");
    let out = adapt(&["quantize", s(&folder), s(&q8), "--bits", "8"], dir.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("8-bit (group 64)"), "{stdout}");
    assert!(stdout.contains("mean KL divergence"), "{stdout}");

    // The converted folder answers, through the normal model path.
    let out = adapt(
        &[
            "generate",
            "--model",
            s(&q8),
            "--prompt",
            "What is the capital of France?",
            "--max-tokens",
            "12",
        ],
        dir.path(),
    );
    assert!(text(&out.stdout).contains("Paris"), "{}", text(&out.stdout));

    // Writing over an existing folder is refused.
    let out = adapt(&["convert", s(&smollm2()), s(&folder)], dir.path());
    let stderr = fails_with(&out, "request.invalid");
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn convert_reports_a_truncated_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(smollm2()).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &real[..real.len() / 2]).unwrap();
    let out_dir = dir.path().join("out");
    let out = adapt(&["convert", s(&truncated), s(&out_dir)], dir.path());
    let stderr = fails_with(&out, "gguf.truncated");
    assert!(stderr.contains("truncated.gguf"), "{stderr}");
    assert!(
        !out_dir.exists(),
        "a failed conversion left a folder behind"
    );
}

#[test]
fn convert_names_an_unsupported_tensor_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iq4.gguf");
    let mut b = GgufBuilder::new().kv_str("general.architecture", "llama");
    for (key, v) in [
        ("llama.embedding_length", 256),
        ("llama.feed_forward_length", 512),
        ("llama.block_count", 1),
        ("llama.attention.head_count", 4),
        ("llama.vocab_size", 32),
    ] {
        b = b.kv(key, GgufValue::U32(v));
    }
    let bytes = b
        .tensor("token_embd.weight", &[256, 32], GgmlType::IQ4_XS)
        .build();
    std::fs::write(&path, bytes).unwrap();
    let out = adapt(
        &["convert", s(&path), s(&dir.path().join("out"))],
        dir.path(),
    );
    let stderr = fails_with(&out, "gguf.unsupported_type");
    assert!(
        stderr.contains("'token_embd.weight'")
            && stderr.contains("IQ4_XS")
            && stderr.contains("Q4_K"),
        "{stderr}"
    );
}

#[test]
fn quantize_reports_a_missing_shard_and_unsupported_settings() {
    let dir = tempfile::tempdir().unwrap();
    let sharded = adapt_testsupport::repo_root().join("tests/fixtures/parity/llama_sharded");
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for entry in std::fs::read_dir(&sharded).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("model-00002") {
            std::fs::copy(entry.path(), broken.join(&name)).unwrap();
        }
    }
    let out = adapt(
        &[
            "quantize",
            s(&broken),
            s(&dir.path().join("q")),
            "--no-quality",
        ],
        dir.path(),
    );
    let stderr = fails_with(&out, "model.invalid");
    assert!(
        stderr.contains("model-00002-of-00003.safetensors") && stderr.contains("missing"),
        "{stderr}"
    );

    let out = adapt(
        &[
            "quantize",
            s(&sharded),
            s(&dir.path().join("q3")),
            "--bits",
            "3",
        ],
        dir.path(),
    );
    fails_with(&out, "quantize.unsupported");

    // An unknown quantization method in config.json.
    let gptq = dir.path().join("gptq");
    std::fs::create_dir(&gptq).unwrap();
    let config = std::fs::read_to_string(sharded.join("config.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&config).unwrap();
    json["quantization_config"] = serde_json::json!({"quant_method": "gptq", "bits": 4});
    std::fs::write(gptq.join("config.json"), json.to_string()).unwrap();
    let out = adapt(
        &[
            "quantize",
            s(&gptq),
            s(&dir.path().join("q")),
            "--no-quality",
        ],
        dir.path(),
    );
    let stderr = fails_with(&out, "model.invalid");
    assert!(stderr.contains("'gptq'"), "{stderr}");
}
