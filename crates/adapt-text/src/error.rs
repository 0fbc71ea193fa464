//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading a tokenizer, tokenizing or rendering a template.
///
/// [`TextError::code`] gives a stable, machine-readable code for each variant.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A file could not be read.
    #[error("cannot read {}: {source}; check that the file exists and is readable", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file could not be written.
    #[error("cannot write {}: {source}; check free space and permissions", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (tokenizer_config.json, config.json …) is not valid JSON.
    #[error("{} is not valid JSON: {source}; re-download the model's files", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// `tokenizer.json` could not be understood by the tokenizer library.
    #[error(
        "{} is not a tokenizer.json this build can load: {message}; re-download it, or use a GGUF \
         file of the model instead",
        .path.display()
    )]
    TokenizerJson {
        /// The file.
        path: PathBuf,
        /// What the tokenizer library said.
        message: String,
    },

    /// The GGUF file lacks a metadata key needed to build its tokenizer.
    #[error(
        "{} has no '{key}' metadata, so no tokenizer can be built from it; use a GGUF converted \
         by a current llama.cpp, or load the model's tokenizer.json instead",
        .path.display()
    )]
    MissingMetadata {
        /// The GGUF file.
        path: PathBuf,
        /// The missing key.
        key: String,
    },

    /// The GGUF file's tokenizer model (`tokenizer.ggml.model`) is not supported.
    #[error(
        "{} uses tokenizer model '{model}', which is not supported (supported: gpt2, llama); \
         load the model's tokenizer.json instead",
        .path.display()
    )]
    UnsupportedTokenizer {
        /// The GGUF file.
        path: PathBuf,
        /// The value of `tokenizer.ggml.model`.
        model: String,
    },

    /// The GGUF file's pre-tokenizer (`tokenizer.ggml.pre`) is not supported.
    #[error(
        "{} uses pre-tokenizer '{pre}', which is not supported (supported: {supported}); \
         load the model's tokenizer.json instead",
        .path.display()
    )]
    UnsupportedPreTokenizer {
        /// The GGUF file.
        path: PathBuf,
        /// The value of `tokenizer.ggml.pre`.
        pre: String,
        /// The supported names, comma-separated.
        supported: String,
    },

    /// The tokenizer data is inconsistent (e.g. a special token id out of range).
    #[error("the tokenizer in {} is inconsistent: {reason}; re-download or re-convert the model", .path.display())]
    BadTokenizerData {
        /// The file the data came from.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// Encoding text failed.
    #[error("cannot tokenize the text: {message}")]
    Encode {
        /// What the tokenizer library said.
        message: String,
    },

    /// Decoding token ids failed.
    #[error("cannot decode the token ids: {message}")]
    Decode {
        /// What the tokenizer library said.
        message: String,
    },

    /// A chat template does not compile.
    #[error(
        "the chat template has a syntax error: {message}; fix the template or pass another one"
    )]
    TemplateSyntax {
        /// The template engine's message, with the line.
        message: String,
    },

    /// Rendering a chat template failed (other than through `raise_exception`).
    #[error(
        "the chat template failed to render: {message}; check the messages, or fix the template"
    )]
    TemplateRender {
        /// The template engine's message, with the line.
        message: String,
    },

    /// The chat template called `raise_exception(message)`: it rejects these messages.
    #[error("the chat template rejected the conversation: {message}")]
    TemplateRaised {
        /// The message the template raised, verbatim.
        message: String,
    },
}

impl TextError {
    /// A stable, machine-readable code for this error, e.g. `"text.template_raised"`.
    pub fn code(&self) -> &'static str {
        match self {
            TextError::Io { .. } => "text.io",
            TextError::Write { .. } => "text.write",
            TextError::Json { .. } => "text.bad_json",
            TextError::TokenizerJson { .. } => "text.bad_tokenizer_json",
            TextError::MissingMetadata { .. } => "text.missing_metadata",
            TextError::UnsupportedTokenizer { .. } => "text.unsupported_tokenizer",
            TextError::UnsupportedPreTokenizer { .. } => "text.unsupported_pre_tokenizer",
            TextError::BadTokenizerData { .. } => "text.bad_tokenizer_data",
            TextError::Encode { .. } => "text.encode",
            TextError::Decode { .. } => "text.decode",
            TextError::TemplateSyntax { .. } => "text.template_syntax",
            TextError::TemplateRender { .. } => "text.template_render",
            TextError::TemplateRaised { .. } => "text.template_raised",
        }
    }
}
