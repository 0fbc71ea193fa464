//! Reads the real SmolLM2 GGUF that `scripts/setup.sh` downloads into `models-cache/`.
//! The path can be overridden with `ADAPT_SMOLLM2_GGUF`.

use std::time::Instant;

use adapt_gguf::{GgmlType, GgufFile};

#[test]
fn smollm2_header_metadata_and_tensors() {
    let path = adapt_testsupport::smollm2_gguf();
    let start = Instant::now();
    let f = GgufFile::open(&path).expect("the real model opens");
    let elapsed = start.elapsed();
    eprintln!("GgufFile::open took {elapsed:?}");

    assert_eq!(f.version(), 3);
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.tensors().len(), 272);
    assert_eq!(f.keys().count(), 33);
    assert_eq!(f.get_u32("llama.block_count"), Some(30));
    assert_eq!(f.get_u32("llama.embedding_length"), Some(576));
    assert_eq!(f.get_u32("llama.attention.head_count"), Some(9));
    assert_eq!(f.get_u32("llama.attention.head_count_kv"), Some(3));
    assert_eq!(f.get_f32("llama.rope.freq_base"), Some(100000.0));
    assert_eq!(f.get_str("tokenizer.ggml.model"), Some("gpt2"));
    assert_eq!(f.get_str("tokenizer.ggml.pre"), Some("smollm"));
    assert_eq!(f.get_bool("tokenizer.ggml.add_bos_token"), Some(false));
    assert_eq!(f.get_u32("tokenizer.ggml.eos_token_id"), Some(2));
    let tokens = f.get_string_array("tokenizer.ggml.tokens").expect("tokens");
    assert_eq!(tokens.len(), 49152);
    assert_eq!(tokens[1], "<|im_start|>");
    assert_eq!(
        f.get_string_array("tokenizer.ggml.merges")
            .map(<[String]>::len),
        Some(48900)
    );
    assert_eq!(
        f.get_i32_array("tokenizer.ggml.token_type")
            .map(<[i32]>::len),
        Some(49152)
    );
    assert!(f
        .get_str("tokenizer.chat_template")
        .is_some_and(|t| t.contains("<|im_start|>")));
    assert_eq!(f.alignment(), 32);

    let embd = f.tensor("token_embd.weight").expect("token_embd");
    assert_eq!(embd.ggml_type, GgmlType::Q8_0);
    assert_eq!(embd.dims, vec![576, 49152]);
    assert_eq!(embd.byte_size(), Some(576 / 32 * 34 * 49152));
    let count = |ty| f.tensors().iter().filter(|t| t.ggml_type == ty).count();
    assert_eq!(
        (
            count(GgmlType::Q4_1),
            count(GgmlType::F32),
            count(GgmlType::Q8_0)
        ),
        (210, 61, 1)
    );
    assert_eq!(
        f.tensor("blk.29.attn_q.weight").map(|t| t.ggml_type),
        Some(GgmlType::Q4_1)
    );

    // The last tensor ends within the file.
    let end = f
        .tensors()
        .iter()
        .map(|t| f.data_offset() + t.offset + t.byte_size().unwrap_or(0))
        .max()
        .unwrap_or(0);
    assert!(end <= f.file_len() && f.file_len() - end < 32);
}
