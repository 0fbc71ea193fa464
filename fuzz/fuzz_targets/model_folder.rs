//! A model folder, hostile: `config.json` (before the input's first 0 byte) and
//! `model.safetensors` (after it) described by the model library from the config and the
//! safetensors header alone — architecture, shape, parameters, quantization, runnable or why
//! not. Any input must give a description or an error, never a panic.
#![no_main]

use adapt_gguf::GgufSupport;
use adapt_library::{describe, Supported};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (config, weights) = adapt_fuzz::split(data);
    let dir = adapt_fuzz::scratch().join("folder");
    adapt_fuzz::write("folder/config.json", config);
    adapt_fuzz::write("folder/model.safetensors", weights);
    let supported = Supported::new(
        &["llama", "qwen2", "mistral", "gemma2", "phi3"],
        GgufSupport {
            architectures: &["llama"],
            rope_scaling: &[],
            rope_freqs: false,
        },
    );
    let _ = describe(&dir, &supported);
});
