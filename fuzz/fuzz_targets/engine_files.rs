//! The files the engine reads through MLX, hostile: a folder's `config.json` (before the
//! input's first 0 byte) turned into the model's shape as the loader does, and a prompt-cache
//! file (after it; mlx-lm's format: a safetensors file with string metadata) read back into a
//! sequence cache. Any input must give a value or an error, never a panic or an abort.
#![no_main]

use adapt_engine::ModelArgs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (config, cache) = adapt_fuzz::split(data);
    let config_path = adapt_fuzz::write("engine/config.json", config);
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(config) {
        let _ = ModelArgs::from_config(&config_path, &json);
    }
    let path = adapt_fuzz::write("engine/cache.safetensors", cache);
    let _ = adapt_engine::prompt_cache::load(&path);
});
