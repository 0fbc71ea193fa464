//! Our block decoders against the `gguf` Python package's (`gguf.quants.dequantize`), on a
//! file the package wrote: every type it quantizes from real values, and random blocks of
//! the K-quants. Decoded values must be bit-identical (both compute in f32 in the same order).
//! Slow test: needs the reference environment (`scripts/reference/env.sh`).

use std::path::Path;

use adapt_gguf::GgufFile;
use adapt_testsupport::{reference_python, run_reference};

/// `gguf.quants.dequantize`'s values of every tensor of `path`, by name, in file order.
fn reference_values(python: &str, path: &Path) -> Vec<(String, Vec<f32>)> {
    let out = path.with_extension("f32");
    let index = run_reference(
        python,
        "gguf_quants.py",
        ["dequantize".as_ref(), path.as_os_str(), out.as_os_str()],
    );
    let bytes = std::fs::read(&out).unwrap();
    let all: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    String::from_utf8(index)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let (offset, count) = (
                v["offset"].as_u64().unwrap() as usize,
                v["count"].as_u64().unwrap() as usize,
            );
            (
                v["name"].as_str().unwrap().to_string(),
                all[offset..offset + count].to_vec(),
            )
        })
        .collect()
}

/// Decodes every tensor of `path` (two rows at a time, to exercise row ranges) and checks it
/// against the reference; returns the tensor types seen.
fn check_file(python: &str, path: &Path) -> Vec<String> {
    let gguf = GgufFile::open(path).unwrap();
    let mut types = Vec::new();
    for (name, want) in reference_values(python, path) {
        let info = gguf.tensor(&name).unwrap();
        let mut data = gguf.tensor_data(info).unwrap();
        let mut got = Vec::new();
        let mut chunk = Vec::new();
        for start in (0..data.rows()).step_by(2) {
            data.read_f32(start..start + 2, &mut chunk).unwrap();
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got.len(), want.len(), "{name}");
        let differ = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a.to_bits() != b.to_bits() && !(a == b || a.is_nan() && b.is_nan()));
        if let Some(i) = differ {
            panic!(
                "{}: tensor {name} ({}) value {i}: ours {} reference {}",
                path.display(),
                info.ggml_type,
                got[i],
                want[i]
            );
        }
        types.push(info.ggml_type.to_string());
    }
    types
}

#[test]
fn every_type_decodes_as_the_gguf_package_does() {
    let Some(python) = reference_python("every_type_decodes_as_the_gguf_package_does") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for seed in ["1", "2"] {
        let path = dir.path().join(format!("types-{seed}.gguf"));
        run_reference(
            &python,
            "gguf_quants.py",
            ["write".as_ref(), path.as_os_str(), seed.as_ref()],
        );
        let types = check_file(&python, &path);
        assert_eq!(
            types,
            [
                "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K",
                "Q4_K", "Q5_K", "Q6_K"
            ]
        );
    }
}

#[test]
fn llama_cpp_quantized_files_decode_as_the_gguf_package_does() {
    let Some(python) =
        reference_python("llama_cpp_quantized_files_decode_as_the_gguf_package_does")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files = adapt_testsupport::llama_cpp_files(&python, dir.path(), 3);
    let mut seen: Vec<String> = Vec::new();
    for (_, path) in &files {
        seen.extend(check_file(&python, path));
    }
    seen.sort();
    seen.dedup();
    // llama.cpp's K-quant mixes use every K-quant type.
    for ty in ["F16", "F32", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"] {
        assert!(seen.iter().any(|s| s == ty), "{ty} not among {seen:?}");
    }
}
