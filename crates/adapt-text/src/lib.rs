//! Text handling for Adapt, without MLX: tokenizers loaded from GGUF metadata or Hugging Face
//! files, chat templates rendered as Hugging Face transformers renders them, and a streaming
//! detokenizer for generated tokens.
//!
//! ```no_run
//! use adapt_text::{ChatMessage, ChatTemplate, StreamingDetokenizer, Tokenizer};
//!
//! let gguf = adapt_gguf::GgufFile::open("model.gguf")?;
//! let tokenizer = Tokenizer::from_gguf(&gguf)?;
//! let template = ChatTemplate::new(
//!     tokenizer.chat_template().unwrap_or_default(),
//!     tokenizer.bos_token(),
//!     tokenizer.eos_token(),
//! )?;
//! let prompt = template.render(&[ChatMessage::new("user", "Hi!")], true)?;
//! let ids = tokenizer.encode(&prompt, false)?;
//!
//! let mut detok = StreamingDetokenizer::new(&tokenizer, true);
//! for id in ids {
//!     print!("{}", detok.push(id)?);
//! }
//! print!("{}", detok.finish()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bytelevel;
mod error;
mod export;
mod gguf;
mod py;
mod stream;
mod template;
mod tokenizer;

pub use error::TextError;
pub use stream::StreamingDetokenizer;
pub use template::{ChatMessage, ChatTemplate};
pub use tokenizer::Tokenizer;
