//! Helpers shared by the fuzz targets: inputs written to files (the parsers read files), an
//! input cut into parts, and the real model's tokenizer when it is on this machine.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A folder of this process's own for the files the targets write.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("ADAPT_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("adapt-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder for the fuzz inputs");
        dir
    })
}

/// Writes `bytes` to the scratch file `name` and returns its path.
pub fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("the scratch file's folder");
    }
    std::fs::write(&path, bytes).expect("the scratch file");
    path
}

/// `data` cut at its first `0` byte: (before, after); without one, (`data`, empty).
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The real test model (SmolLM2's GGUF): `ADAPT_FUZZ_MODEL`, else the repository's
/// `models-cache/`; `None` when neither is there.
pub fn model_path() -> Option<PathBuf> {
    let path = std::env::var_os("ADAPT_FUZZ_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../models-cache/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    path.is_file().then_some(path)
}

/// The real model's tokenizer and chat template, loaded once.
pub fn text_model() -> Option<&'static adapt_data::TextModel> {
    static MODEL: OnceLock<Option<adapt_data::TextModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let model = adapt_data::TextModel::from_gguf(&model_path()?);
            Some(model.expect("the real model's tokenizer loads"))
        })
        .as_ref()
}

/// The real model's chat template source, loaded once (a ChatML template when the model is
/// not on this machine).
pub fn real_template() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        model_path()
            .and_then(|p| adapt_gguf::GgufFile::open(p).ok())
            .and_then(|g| g.get_str("tokenizer.chat_template").map(str::to_string))
            .unwrap_or_else(|| {
                "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + \
                 message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}\
                 {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
                    .to_string()
            })
    })
}
