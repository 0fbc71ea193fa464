//! Writing a [`Tokenizer`] as Hugging Face files — `tokenizer.json` and
//! `tokenizer_config.json` — so that a model converted from GGUF loads in `transformers` /
//! mlx-lm with the same ids, special tokens and chat template.

use std::path::Path;

use serde_json::{json, Value};
use tokenizers::processors::template::TemplateProcessing;

use crate::{TextError, Tokenizer};

impl Tokenizer {
    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir`; `context_length` is
    /// recorded as `model_max_length`.
    pub fn write_hf_files(&self, dir: &Path, context_length: usize) -> Result<(), TextError> {
        let i = &self.inner;
        let mut tk = i.tk.clone();
        // BOS / EOS added by the tokenizer itself, as `transformers`' fast tokenizers do.
        if i.manual_specials && (i.add_bos || i.add_eos) {
            let bos = i.bos.as_ref().filter(|_| i.add_bos);
            let eos = i.eos.as_ref().zip(i.eos_ids.first()).filter(|_| i.add_eos);
            let mut single = Vec::new();
            let mut pair = Vec::new();
            let mut specials = Vec::new();
            if let Some((t, id)) = bos {
                single.push(t.clone());
                pair.push(t.clone());
                specials.push((t.clone(), *id));
            }
            single.push("$A".to_string());
            pair.push("$A".to_string());
            if let Some((t, id)) = eos {
                single.push(t.clone());
                pair.push(t.clone());
                specials.push((t.clone(), *id));
            }
            pair.push("$B:1".to_string());
            let template = TemplateProcessing::builder()
                .try_single(single.join(" "))
                .and_then(|b| b.try_pair(pair.join(" ")))
                .map_err(|e| TextError::Encode {
                    message: e.to_string(),
                })?
                .special_tokens(specials)
                .build()
                .map_err(|e| TextError::Encode {
                    message: e.to_string(),
                })?;
            tk.with_post_processor(Some(template));
        }
        let json_path = dir.join("tokenizer.json");
        let text = tk.to_string(true).map_err(|e| TextError::Encode {
            message: e.to_string(),
        })?;
        write(&json_path, &text)?;

        let mut config = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": i.add_bos,
            "add_eos_token": i.add_eos,
            "clean_up_tokenization_spaces": false,
            "model_max_length": context_length,
        });
        let map = config.as_object_mut().expect("an object");
        if let Some((bos, _)) = &i.bos {
            map.insert("bos_token".into(), Value::from(bos.clone()));
        }
        if let Some(eos) = &i.eos {
            map.insert("eos_token".into(), Value::from(eos.clone()));
        }
        if let Some(template) = &i.chat_template {
            map.insert("chat_template".into(), Value::from(template.clone()));
        }
        let text = serde_json::to_string_pretty(&config).expect("JSON values serialize");
        write(&dir.join("tokenizer_config.json"), &text)
    }
}

fn write(path: &Path, text: &str) -> Result<(), TextError> {
    std::fs::write(path, text).map_err(|source| TextError::Write {
        path: path.to_path_buf(),
        source,
    })
}
