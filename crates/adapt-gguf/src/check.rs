//! Whether a GGUF file can be loaded — the one decision the model library (which lists files
//! as runnable or not) and the engine (which loads them) share. The engine states what it
//! supports ([`GgufSupport`]); this module checks a file against it from the header alone.

use std::fmt;

use crate::{GgmlType, GgufFile};

/// What the engine reads of GGUF files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgufSupport {
    /// `general.architecture` values it loads (llama.cpp's names).
    pub architectures: &'static [&'static str],
    /// `<arch>.rope.scaling.type` values it applies (an absent key is always fine).
    pub rope_scaling: &'static [&'static str],
    /// Whether it applies per-frequency RoPE factors (a `rope_freqs.weight` tensor).
    pub rope_freqs: bool,
}

/// One reason a GGUF file cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `general.architecture` is missing or not supported.
    Architecture {
        /// The file's architecture, if stated.
        found: Option<String>,
        /// The architectures that are supported.
        supported: &'static [&'static str],
    },
    /// Tensors of a type that cannot be decoded (one problem per type).
    TensorType {
        /// The type.
        ggml_type: GgmlType,
        /// The first tensor of that type.
        tensor: String,
        /// How many tensors have it.
        count: usize,
    },
    /// A metadata key the model's shape or tokenizer needs is missing.
    MissingMetadata(String),
    /// The metadata is present but not usable.
    Metadata(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Architecture {
                found: Some(a),
                supported,
            } => write!(
                f,
                "architecture `{a}` cannot be loaded from GGUF yet (supported: {})",
                supported.join(", ")
            ),
            Problem::Architecture { found: None, .. } => {
                f.write_str("the architecture is not stated (metadata 'general.architecture')")
            }
            Problem::TensorType {
                ggml_type,
                tensor,
                count,
            } => {
                let others = match count {
                    1 => String::new(),
                    n => format!(" and {} more", n - 1),
                };
                write!(
                    f,
                    "tensor '{tensor}'{others} is stored as {}",
                    crate::quants::DecodeError::Unsupported(*ggml_type)
                )
            }
            Problem::MissingMetadata(key) => write!(f, "metadata '{key}' is missing"),
            Problem::Metadata(what) => f.write_str(what),
        }
    }
}

impl GgufSupport {
    /// Every reason `gguf` cannot be loaded; empty when it can.
    pub fn problems(&self, gguf: &GgufFile) -> Vec<Problem> {
        let mut problems = Vec::new();
        let arch = gguf.architecture();
        match arch {
            Some(a) if self.architectures.contains(&a) => {}
            found => problems.push(Problem::Architecture {
                found: found.map(str::to_string),
                supported: self.architectures,
            }),
        }
        let mut types: Vec<Problem> = Vec::new();
        for t in gguf
            .tensors()
            .iter()
            .filter(|t| !t.ggml_type.is_decodable())
        {
            match types.iter_mut().find(
                |p| matches!(p, Problem::TensorType { ggml_type, .. } if *ggml_type == t.ggml_type),
            ) {
                Some(Problem::TensorType { count, .. }) => *count += 1,
                _ => types.push(Problem::TensorType {
                    ggml_type: t.ggml_type,
                    tensor: t.name.clone(),
                    count: 1,
                }),
            }
        }
        problems.extend(types);
        // The shape is only read for an architecture that is supported.
        if let Some(arch) = arch.filter(|a| self.architectures.contains(a)) {
            self.metadata_problems(gguf, arch, &mut problems);
        }
        problems
    }

    fn metadata_problems(&self, gguf: &GgufFile, arch: &str, problems: &mut Vec<Problem>) {
        let key = |k: &str| format!("{arch}.{k}");
        for k in ["block_count", "embedding_length", "attention.head_count"] {
            if gguf.get_u32(&key(k)).is_none() {
                problems.push(Problem::MissingMetadata(key(k)));
            }
        }
        // Mixture-of-experts files may state only their experts' width.
        if gguf.get_u32(&key("feed_forward_length")).is_none()
            && gguf.get_u32(&key("expert_feed_forward_length")).is_none()
        {
            problems.push(Problem::MissingMetadata(key("feed_forward_length")));
        }
        if let (Some(hidden), Some(heads)) = (
            gguf.get_u32(&key("embedding_length")),
            gguf.get_u32(&key("attention.head_count")),
        ) {
            if heads == 0
                || (hidden % heads != 0 && gguf.get(&key("attention.key_length")).is_none())
            {
                problems.push(Problem::Metadata(format!(
                    "{hidden} hidden units do not split into {heads} attention heads"
                )));
            }
        }
        for k in ["tokenizer.ggml.model", "tokenizer.ggml.tokens"] {
            if gguf.get(k).is_none() {
                problems.push(Problem::MissingMetadata(k.to_string()));
            }
        }
        match gguf.get_str(&key("rope.scaling.type")) {
            Some(t) if t != "none" && !self.rope_scaling.contains(&t) => problems.push(
                Problem::Metadata(format!("RoPE scaling '{t}' is not supported yet")),
            ),
            _ => {}
        }
        if !self.rope_freqs && gguf.tensor("rope_freqs.weight").is_some() {
            problems.push(Problem::Metadata(
                "per-frequency RoPE factors (Llama 3.1 style, tensor 'rope_freqs.weight') are \
                 not supported yet"
                    .into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::GgufBuilder;
    use crate::GgufValue;

    const SUPPORT: GgufSupport = GgufSupport {
        architectures: &["llama"],
        rope_scaling: &["linear"],
        rope_freqs: false,
    };

    fn open(b: GgufBuilder) -> GgufFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b.build()).unwrap();
        GgufFile::open(&path).unwrap()
    }

    fn llama() -> GgufBuilder {
        let mut b = GgufBuilder::new().kv_str("general.architecture", "llama");
        for (k, v) in [
            ("block_count", 2),
            ("embedding_length", 64),
            ("feed_forward_length", 128),
            ("attention.head_count", 4),
        ] {
            b = b.kv(&format!("llama.{k}"), GgufValue::U32(v));
        }
        b.kv_str("tokenizer.ggml.model", "gpt2")
            .kv_strings("tokenizer.ggml.tokens", &["a", "b"])
    }

    #[test]
    fn a_complete_file_of_decodable_types_has_no_problems() {
        let g = open(
            llama()
                .tensor("a", &[256, 2], GgmlType::Q4_K)
                .tensor("b", &[256], GgmlType::Q6_K)
                .tensor("c", &[32], GgmlType::Q5_1),
        );
        assert_eq!(SUPPORT.problems(&g), vec![]);
    }

    #[test]
    fn each_problem_is_named() {
        let g = open(
            llama()
                .kv_str("llama.rope.scaling.type", "yarn")
                .tensor("blk.0.attn_q.weight", &[256], GgmlType::IQ2_XS)
                .tensor("blk.1.attn_q.weight", &[256], GgmlType::IQ2_XS)
                .tensor("x", &[256], GgmlType::IQ4_XS)
                .tensor("rope_freqs.weight", &[32], GgmlType::F32),
        );
        let text: Vec<String> = SUPPORT.problems(&g).iter().map(|p| p.to_string()).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(text[0].starts_with("tensor 'blk.0.attn_q.weight' and 1 more is stored as IQ2_XS"));
        assert!(text[1].starts_with("tensor 'x' is stored as IQ4_XS"));
        assert!(text[2].contains("RoPE scaling 'yarn'"));
        assert!(text[3].contains("rope_freqs"));

        let g = open(GgufBuilder::new().kv_str("general.architecture", "qwen2"));
        let p = SUPPORT.problems(&g);
        assert_eq!(
            p[0].to_string(),
            "architecture `qwen2` cannot be loaded from GGUF yet (supported: llama)"
        );
        assert_eq!(p.len(), 1, "no metadata checks for another architecture");

        let g = open(GgufBuilder::new().kv_str("general.architecture", "llama"));
        let missing: Vec<String> = SUPPORT.problems(&g).iter().map(|p| p.to_string()).collect();
        assert!(missing.contains(&"metadata 'llama.block_count' is missing".to_string()));
        assert!(missing.contains(&"metadata 'tokenizer.ggml.tokens' is missing".to_string()));
        assert_eq!(
            SUPPORT.problems(&open(GgufBuilder::new()))[0].to_string(),
            "the architecture is not stated (metadata 'general.architecture')"
        );
    }
}
