//! Unit tests: small GGUF files built in memory with [`crate::test_util::GgufBuilder`].

use std::io::Cursor;
use std::path::Path;

use crate::test_util::GgufBuilder;
use crate::{reader, GgmlType, GgufArray, GgufError, GgufFile, GgufValue};

fn parse(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    let path = Path::new("mem/x.gguf");
    reader::parse(Cursor::new(bytes), bytes.len() as u64, path)
        .map(|p| GgufFile::from_parsed(path, bytes.len() as u64, p))
}

fn all_types() -> GgufBuilder {
    GgufBuilder::new()
        .kv_str("general.architecture", "llama")
        .kv("u8", GgufValue::U8(200))
        .kv("i8", GgufValue::I8(-5))
        .kv("u16", GgufValue::U16(60000))
        .kv("i16", GgufValue::I16(-300))
        .kv("u32", GgufValue::U32(4_000_000_000))
        .kv("i32", GgufValue::I32(-7))
        .kv("i32_pos", GgufValue::I32(30))
        .kv("u64", GgufValue::U64(u64::MAX))
        .kv("i64", GgufValue::I64(i64::MIN))
        .kv("f32", GgufValue::F32(1.5))
        .kv("f64", GgufValue::F64(-2.25))
        .kv("bool", GgufValue::Bool(true))
        .kv_str("str", "héllo ✓")
        .kv("a_u8", GgufValue::Array(GgufArray::U8(vec![1, 2, 255])))
        .kv("a_i8", GgufValue::Array(GgufArray::I8(vec![-1, 2])))
        .kv("a_u16", GgufValue::Array(GgufArray::U16(vec![1, 65535])))
        .kv("a_i16", GgufValue::Array(GgufArray::I16(vec![-2, 3])))
        .kv("a_u32", GgufValue::Array(GgufArray::U32(vec![7, 8])))
        .kv("a_i32", GgufValue::Array(GgufArray::I32(vec![1, -1, 3])))
        .kv("a_u64", GgufValue::Array(GgufArray::U64(vec![u64::MAX])))
        .kv("a_i64", GgufValue::Array(GgufArray::I64(vec![-9])))
        .kv("a_f32", GgufValue::Array(GgufArray::F32(vec![0.5, -1.0])))
        .kv("a_f64", GgufValue::Array(GgufArray::F64(vec![3.25])))
        .kv(
            "a_bool",
            GgufValue::Array(GgufArray::Bool(vec![true, false])),
        )
        .kv_strings("a_str", &["a", "", "ü"])
        .kv("a_empty", GgufValue::Array(GgufArray::F32(vec![])))
        .kv(
            "a_nested",
            GgufValue::Array(GgufArray::Array(vec![
                GgufArray::I32(vec![1, 2]),
                GgufArray::String(vec!["x".into()]),
                GgufArray::Array(vec![GgufArray::Bool(vec![true])]),
            ])),
        )
}

fn with_tensors() -> GgufBuilder {
    GgufBuilder::new()
        .kv_str("general.architecture", "llama")
        .kv_strings("tokenizer.ggml.tokens", &["a", "b", "c"])
        .tensor("token_embd.weight", &[64, 3], GgmlType::Q8_0)
        .tensor("blk.0.attn_norm.weight", &[5], GgmlType::F32)
        .tensor("blk.3.attn_q.weight", &[32, 2], GgmlType::Q4_1)
}

#[test]
fn every_value_type_round_trips() {
    let f = parse(&all_types().build()).expect("parses");
    assert_eq!(f.version(), 3);
    let keys: Vec<&str> = f.keys().collect();
    assert_eq!(keys[0], "general.architecture");
    assert_eq!(keys.len(), 28);
    assert_eq!(keys.last(), Some(&"a_nested"));
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.get("u8"), Some(&GgufValue::U8(200)));
    assert_eq!(f.get("i8"), Some(&GgufValue::I8(-5)));
    assert_eq!(f.get("u16"), Some(&GgufValue::U16(60000)));
    assert_eq!(f.get("i16"), Some(&GgufValue::I16(-300)));
    assert_eq!(f.get("i64"), Some(&GgufValue::I64(i64::MIN)));
    assert_eq!(f.get("f64"), Some(&GgufValue::F64(-2.25)));
    assert_eq!(f.get_str("str"), Some("héllo ✓"));
    assert_eq!(f.get_bool("bool"), Some(true));
    assert_eq!(f.get_f32("f32"), Some(1.5));
    assert_eq!(f.get_f32("f64"), Some(-2.25));
    assert_eq!(f.get_string_array("a_str").map(<[String]>::len), Some(3));
    assert_eq!(f.get_i32_array("a_i32"), Some(&[1, -1, 3][..]));
    assert_eq!(f.get_u32_array("a_u32"), Some(&[7, 8][..]));
    assert_eq!(f.get_f32_array("a_f32"), Some(&[0.5, -1.0][..]));
    assert_eq!(f.get_array("a_empty").map(GgufArray::is_empty), Some(true));
    assert_eq!(
        f.get("a_bool"),
        Some(&GgufValue::Array(GgufArray::Bool(vec![true, false])))
    );
    assert_eq!(
        f.get("a_u64"),
        Some(&GgufValue::Array(GgufArray::U64(vec![u64::MAX])))
    );
    assert_eq!(
        f.get("a_f64"),
        Some(&GgufValue::Array(GgufArray::F64(vec![3.25])))
    );
    let nested = GgufArray::Array(vec![
        GgufArray::I32(vec![1, 2]),
        GgufArray::String(vec!["x".into()]),
        GgufArray::Array(vec![GgufArray::Bool(vec![true])]),
    ]);
    assert_eq!(f.get("a_nested"), Some(&GgufValue::Array(nested)));
    assert!(f.get("missing").is_none());
    assert!(f.tensors().is_empty());
}

#[test]
fn integer_helpers_accept_any_width_that_fits() {
    let f = parse(&all_types().build()).expect("parses");
    assert_eq!(f.get_u32("u8"), Some(200));
    assert_eq!(f.get_u32("i32_pos"), Some(30));
    assert_eq!(f.get_u32("u32"), Some(4_000_000_000));
    assert_eq!(f.get_u32("i32"), None, "negative");
    assert_eq!(f.get_u32("u64"), None, "too large");
    assert_eq!(f.get_u64("u64"), Some(u64::MAX));
    assert_eq!(f.get_u64("u16"), Some(60000));
    assert_eq!(f.get_i64("i32"), Some(-7));
    assert_eq!(f.get_i64("u64"), None);
    assert_eq!(f.get_u32("str"), None, "wrong type");
    assert_eq!(f.get_str("u8"), None, "wrong type");
    assert_eq!(f.get_i32_array("a_u32"), None, "wrong element type");
    let nested = f.get_array("a_nested").expect("array");
    assert_eq!(nested.len(), 3);
    assert_eq!(
        f.get_array("a_u16").and_then(GgufArray::to_i64_vec),
        Some(vec![1, 65535])
    );
}

#[test]
fn tensor_table_and_data_offset() {
    let f = parse(&with_tensors().build()).expect("parses");
    assert_eq!(f.tensors().len(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset() % 32, 0);
    let t = f.tensor("blk.3.attn_q.weight").expect("tensor");
    assert_eq!(t.dims, vec![32, 2]);
    assert_eq!(t.ggml_type, GgmlType::Q4_1);
    assert_eq!(t.n_elements(), 64);
    assert_eq!(t.byte_size(), Some(40));
    let e = f.tensor("token_embd.weight").expect("tensor");
    assert_eq!((e.offset, e.byte_size()), (0, Some(2 * 34 * 3)));
    assert_eq!(f.tensors()[1].offset, 224);
    assert_eq!(
        f.data_offset() + t.offset + 40,
        with_tensors().build().len() as u64
    );
}

#[test]
fn custom_alignment_and_version_2() {
    let bytes = with_tensors()
        .version(2)
        .kv("general.alignment", GgufValue::U32(64))
        .build();
    let f = parse(&bytes).expect("parses");
    assert_eq!((f.version(), f.alignment()), (2, 64));
    assert_eq!(f.data_offset() % 64, 0);
    assert!(f.tensors().iter().all(|t| t.offset % 64 == 0));
}

#[test]
fn bad_alignment_is_malformed() {
    for v in [GgufValue::U32(0), GgufValue::U32(48), GgufValue::F32(32.0)] {
        let bytes = with_tensors().kv("general.alignment", v).build();
        let err = parse(&bytes).expect_err("bad alignment");
        assert_eq!(err.code(), "gguf.malformed", "{err}");
        assert!(err.to_string().contains("general.alignment"), "{err}");
    }
}

#[test]
fn bad_magic() {
    let mut bytes = with_tensors().build();
    bytes[..4].copy_from_slice(b"GGML");
    let err = parse(&bytes).expect_err("bad magic");
    assert_eq!(err.code(), "gguf.bad_magic");
    let msg = err.to_string();
    assert!(
        msg.contains("mem/x.gguf") && msg.contains("47 47 4d 4c"),
        "{msg}"
    );
    let err = parse(b"PK\x03").expect_err("zip");
    assert_eq!(err.code(), "gguf.bad_magic");
}

#[test]
fn unsupported_versions() {
    for (version, hint) in [
        (1, "version 1"),
        (4, "only versions 2 and 3"),
        (0x0300_0000, "big-endian"),
    ] {
        let bytes = with_tensors().version(version).build();
        let err = parse(&bytes).expect_err("unsupported");
        assert_eq!(err.code(), "gguf.unsupported_version");
        assert!(err.to_string().contains(hint), "{err}");
    }
}

#[test]
fn every_prefix_is_a_truncation_error() {
    for bytes in [with_tensors().build(), all_types().build()] {
        for cut in 0..bytes.len() {
            let err = parse(&bytes[..cut]).expect_err("prefix must not parse");
            assert_eq!(err.code(), "gguf.truncated", "cut at {cut}: {err}");
            assert!(err.to_string().contains("mem/x.gguf"), "{err}");
        }
        assert!(parse(&bytes).is_ok());
    }
}

#[test]
fn truncated_tensor_data_names_file_and_tensor() {
    let bytes = with_tensors().build();
    let len = bytes.len() as u64;
    let err = parse(&bytes[..bytes.len() - 1]).expect_err("truncated");
    let expected = format!(
        "mem/x.gguf is truncated: tensor 'blk.3.attn_q.weight' needs bytes up to {len} but the file has {}; re-download it",
        len - 1
    );
    assert_eq!(err.to_string(), expected);
}

/// Replaces the u64 at `at` (little-endian) in a copy of `bytes`.
fn patch_u64(bytes: &[u8], at: usize, v: u64) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    b
}

#[test]
fn absurd_lengths_and_counts_are_errors_not_allocations() {
    let bytes = all_types().build();
    // Tensor count, metadata count, first key length.
    for (at, v) in [(8, u64::MAX), (16, u64::MAX), (16, 1 << 40), (24, u64::MAX)] {
        let err = parse(&patch_u64(&bytes, at, v)).expect_err("absurd");
        assert_eq!(err.code(), "gguf.truncated", "{err}");
    }
    // The value of the first key ("general.architecture", a string) claims u64::MAX bytes.
    let str_len_at = 24 + 8 + "general.architecture".len() + 4;
    let err = parse(&patch_u64(&bytes, str_len_at, u64::MAX)).expect_err("absurd string");
    assert!(err.to_string().contains("general.architecture"), "{err}");
    assert_eq!(err.code(), "gguf.truncated");
    // An array claiming 2^62 strings.
    let b = GgufBuilder::new().kv_strings("k", &["x"]).build();
    let count_at = 24 + 8 + 1 + 4 + 4;
    let err = parse(&patch_u64(&b, count_at, 1 << 62)).expect_err("absurd array");
    assert_eq!(err.code(), "gguf.truncated");
}

#[test]
fn malformed_structures() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            GgufBuilder::new()
                .kv("k", GgufValue::U8(1))
                .kv("k", GgufValue::U8(2))
                .build(),
            "appears twice",
        ),
        (
            GgufBuilder::new()
                .raw_tensor("t", &[1, 1, 1, 1, 1], 0)
                .build(),
            "5 dimensions",
        ),
        (
            GgufBuilder::new()
                .tensor("t", &[33], GgmlType::Q4_0)
                .build(),
            "whole number",
        ),
        (
            GgufBuilder::new()
                .tensor("t", &[u64::MAX, 4], GgmlType::F32)
                .build(),
            "too many elements",
        ),
        (
            GgufBuilder::new()
                .tensor("t", &[4], GgmlType::F32)
                .tensor("t", &[4], GgmlType::F32)
                .build(),
            "appears twice",
        ),
    ];
    for (bytes, needle) in cases {
        let err = parse(&bytes).expect_err(needle);
        assert_eq!(err.code(), "gguf.malformed", "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn unknown_value_type_invalid_key_and_misaligned_offset() {
    let mut b = GgufBuilder::new().kv("k", GgufValue::U8(1)).build();
    b[24 + 8 + 1..24 + 8 + 1 + 4].copy_from_slice(&99u32.to_le_bytes());
    let err = parse(&b).expect_err("unknown type");
    assert!(err.to_string().contains("unknown value type 99"), "{err}");

    let mut b = GgufBuilder::new().kv("k", GgufValue::U8(1)).build();
    b[24 + 8] = 0xff;
    let err = parse(&b).expect_err("bad utf-8");
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");

    let b = GgufBuilder::new().tensor("t", &[4], GgmlType::F32).build();
    let offset_at = 24 + 8 + 1 + 4 + 8 + 4;
    let err = parse(&patch_u64(&b, offset_at, 3)).expect_err("misaligned");
    assert!(err.to_string().contains("not a multiple"), "{err}");
}

#[test]
fn deep_nesting_is_rejected() {
    let mut a = GgufArray::U8(vec![1]);
    for _ in 0..20 {
        a = GgufArray::Array(vec![a]);
    }
    let bytes = GgufBuilder::new().kv("deep", GgufValue::Array(a)).build();
    let err = parse(&bytes).expect_err("too deep");
    assert!(err.to_string().contains("deeper"), "{err}");
}

#[test]
fn unknown_tensor_type_is_kept() {
    let bytes = GgufBuilder::new().raw_tensor("t", &[8], 4).build();
    let f = parse(&bytes).expect("parses");
    assert_eq!(f.tensors()[0].ggml_type, GgmlType::Unknown(4));
    assert_eq!(f.tensors()[0].byte_size(), None);
}

#[test]
fn mutated_files_never_panic() {
    let base = with_tensors().build();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut b = base.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % b.len() as u64) as usize;
            b[at] = next() as u8;
        }
        let _ = parse(&b);
    }
}

#[test]
fn open_reads_from_disk_and_reports_io_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, with_tensors().build()).expect("write");
    let f = GgufFile::open(&path).expect("opens");
    assert_eq!(f.path(), path);
    assert_eq!(f.tensors().len(), 3);
    assert_eq!(
        f.get_string_array("tokenizer.ggml.tokens")
            .map(<[String]>::len),
        Some(3)
    );

    let missing = dir.path().join("missing.gguf");
    let err = GgufFile::open(&missing).expect_err("missing");
    assert_eq!(err.code(), "gguf.io");
    assert!(err.to_string().contains("missing.gguf"), "{err}");

    std::fs::write(&path, &with_tensors().build()[..100]).expect("write");
    let err = GgufFile::open(&path).expect_err("truncated");
    assert_eq!(err.code(), "gguf.truncated");
    assert!(err.to_string().contains("m.gguf"), "{err}");
}

#[test]
fn huge_value_inside_a_huge_file_is_not_allocated() {
    // The file claims to be 1 TiB long, so a 2 GiB string "fits": the size cap must refuse it
    // before allocating.
    let b = GgufBuilder::new().kv_str("k", "v").build();
    let bytes = patch_u64(&b, 24 + 8 + 1 + 4, 2 << 30);
    let path = Path::new("mem/huge.gguf");
    let err = reader::parse(Cursor::new(&bytes), 1 << 40, path)
        .map(|_| ())
        .expect_err("huge string");
    assert_eq!(err.code(), "gguf.malformed");
    assert!(err.to_string().contains("claims 2147483648 bytes"), "{err}");
}
