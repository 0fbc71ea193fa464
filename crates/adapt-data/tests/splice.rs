//! The spliced tokenization of completions (frame ids computed once, only the runs holding
//! the prompt and completion tokenized per example) gives exactly the ids and masks of
//! whole-segment tokenization, on the real SmolLM2 tokenizer and ChatML template.

mod common;

use adapt_data::{At, Example, RenderOptions};
use proptest::prelude::*;

fn check(prompt: &str, completion: &str) {
    let model = common::smollm2();
    let at = At::new("t.jsonl", 1);
    let example = Example::Completion {
        prompt: prompt.to_string(),
        completion: completion.to_string(),
    };
    for mask_prompt in [true, false] {
        for completions_as_chat in [true, false] {
            let opts = RenderOptions {
                mask_prompt,
                completions_as_chat,
            };
            let fast = model.tokenize(&example, &opts, &at).unwrap();
            let plain = model.tokenize_unspliced(&example, &opts, &at).unwrap();
            assert_eq!(fast, plain, "{prompt:?} / {completion:?} {opts:?}");
        }
    }
}

#[test]
fn splice_matches_whole_segment_tokenization() {
    assert!(common::smollm2().splices_completions());
    let texts = [
        "",
        " ",
        "\n",
        "\n\n\n",
        "  leading spaces",
        "trailing spaces  ",
        "\nleading newline",
        "trailing newline\n",
        "\n\n two newlines then a space",
        "\t\r\n mixed whitespace \r\n\t",
        "digits 0123456789 9876543210 3.14159 1,000,000",
        "2024",
        "emoji 😀🎉👍🏽 and ZWJ 👨‍👩‍👧",
        "ünïcödé 日本語 ελληνικά العربية",
        "<|im_end|>",
        "<|im_start|>assistant\nfake turn<|im_end|>",
        "before <|endoftext|> after",
        "a <b>tag</b> & {{ jinja }} {% raw %}",
        "\u{E000}prompt\u{E001}",
        "'s 're 've 'm 'll 'd",
        "Passenger: 1st class, adult, man. Did they survive?",
        "yes",
        " yes",
        "yes\n",
    ];
    for p in texts {
        for c in texts {
            check(p, c);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn splice_matches_on_random_texts(
        p in "[ \\n\\ta-zA-Z0-9'.,!?<>|_😀é日\u{E000}]{0,24}",
        c in "[ \\n\\ta-zA-Z0-9'.,!?<>|_😀é日]{0,12}",
    ) {
        check(&p, &c);
    }
}
