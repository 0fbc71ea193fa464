//! A GGUF file as people download them, hostile: header, metadata, tensor table, tensor data
//! decoded to f32 and to the affine form, the load check, and the tokenizer and chat template
//! rebuilt from the metadata. Any input must give a value or an error, never a panic.
#![no_main]

use adapt_gguf::{AffineRows, GgufFile, GgufSupport};
use libfuzzer_sys::fuzz_target;

const SUPPORT: GgufSupport = GgufSupport {
    architectures: &[
        "llama", "qwen2", "qwen3", "gemma2", "gpt2", "phi3", "qwen3moe",
    ],
    rope_scaling: &["linear", "yarn"],
    rope_freqs: true,
};

fuzz_target!(|data: &[u8]| {
    let path = adapt_fuzz::write("model.gguf", data);
    let Ok(gguf) = GgufFile::open(&path) else {
        return;
    };
    let _ = SUPPORT.problems(&gguf);
    let mut f32s = Vec::new();
    let mut affine = AffineRows::default();
    for info in gguf.tensors().iter().take(16) {
        let Ok(mut tensor) = gguf.tensor_data(info) else {
            continue;
        };
        let rows = tensor.rows().min(2);
        let _ = tensor.read_f32(0..rows, &mut f32s);
        let _ = tensor.read_affine(0..rows, &mut affine);
    }
    if let Ok(tokenizer) = adapt_text::Tokenizer::from_gguf(&gguf) {
        if let Ok(ids) = tokenizer.encode("Hello, <|im_start|> wörld 😀\n", true) {
            let _ = tokenizer.decode(&ids, false);
        }
        if let Ok(model) = adapt_data::TextModel::new(tokenizer) {
            let _ = model.fingerprint();
        }
    }
});
