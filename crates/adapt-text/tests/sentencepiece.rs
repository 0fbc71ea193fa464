//! SentencePiece vocabularies from GGUF (`tokenizer.ggml.model = "llama"`: pieces, scores and
//! token types, as llama.cpp stores Llama 2, Gemma and Phi-3 tokenizers) against the
//! `sentencepiece` library itself: two BPE models it trained (byte fallback, with and without
//! the dummy prefix space), their GGUF files and the ids it gives for a set of texts are in
//! `data/` (regenerate with `gen_spm_reference.py`). Our tokenizer must give the same ids and
//! decode them to the same text. Around added tokens we follow llama.cpp, which runs these
//! files: it encodes each piece of text between added tokens on its own, with its own prefix
//! space (`fragment_ids`, sentencepiece's ids of each piece), where sentencepiece does not
//! cut the text.

use adapt_gguf::GgufFile;
use adapt_text::Tokenizer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    decoded: String,
    fragment_ids: Option<Vec<u32>>,
}

#[derive(Deserialize)]
struct Reference {
    models: std::collections::HashMap<String, Vec<Case>>,
}

fn tokenizer(kind: &str) -> Tokenizer {
    let path = adapt_testsupport::manifest_dir().join(format!("tests/data/spm_{kind}.gguf"));
    let gguf = GgufFile::open(&path).expect("the GGUF file opens");
    Tokenizer::from_gguf(&gguf).expect("the tokenizer builds")
}

#[test]
fn ids_and_text_match_sentencepiece() {
    let reference: Reference =
        serde_json::from_str(include_str!("data/spm_reference.json")).expect("parses");
    for kind in ["llama", "gemma"] {
        let tok = tokenizer(kind);
        assert!(tok.add_bos_token(), "{kind}");
        for case in &reference.models[kind] {
            let ids = tok.encode(&case.text, false).expect("encodes");
            let want = case.fragment_ids.as_ref().unwrap_or(&case.ids);
            assert_eq!(&ids, want, "{kind}: {:?}", case.text);
            let text = tok.decode(&case.ids, false).expect("decodes");
            assert_eq!(text, case.decoded, "{kind}: {:?}", case.text);
        }
        // With the BOS the file asks for, first.
        let ids = tok.encode("Hello", true).unwrap();
        assert_eq!(ids[0], 1, "{kind}");
    }
}
