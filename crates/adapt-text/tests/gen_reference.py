#!/usr/bin/env python3
"""Regenerates tests/data/smollm2_reference.json: token ids, decodes and chat-template renders
from Hugging Face transformers, the reference that tests/smollm2.rs compares against.

Optional: the JSON is committed, and the Rust tests never run this script.

Usage (in a throwaway virtual environment outside the repository):

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install transformers gguf tokenizers jinja2
    /tmp/refenv/bin/python crates/adapt-text/tests/gen_reference.py \
        models-cache/SmolLM2-135M-Instruct.Q4_1.gguf

transformers only loads GGUF files when PyTorch is importable, although the tokenizer needs none
of it. Without torch installed, this script puts a tiny stand-in module in its place (enough for
the import to succeed); install torch to use the real one instead.
"""

import importlib.machinery
import importlib.util
import json
import os
import sys
import types


def stub_torch():
    if importlib.util.find_spec("torch") is not None:
        return

    class Anything:
        def __init__(self, *args, **kwargs):
            pass

        def __getattr__(self, name):
            return Anything()

        def __call__(self, *args, **kwargs):
            return Anything()

    torch = types.ModuleType("torch")
    torch.__spec__ = importlib.machinery.ModuleSpec("torch", None)
    torch.float32 = torch.float16 = torch.bfloat16 = Anything()
    torch.dtype = torch.Tensor = Anything
    nn = types.ModuleType("torch.nn")
    nn.Module = object
    nn.Parameter = Anything
    torch.nn = nn
    torch.__getattr__ = lambda name: Anything()
    sys.modules["torch"] = torch
    sys.modules["torch.nn"] = nn
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    gguf_utils.is_torch_available = lambda: True


TEXTS = [
    "Hello, world!",
    "",
    " ",
    "   leading and trailing spaces   ",
    "a    b     c      d",
    "tabs\tand\ttabs\t\tand\nnewlines\n\n\nand\r\nwindows\r\n",
    " \t \n mixed whitespace \n\t ",
    "Digits: 0 12 345 6789 3.14159 1,000,000 2024-11-23 +44 20 7946 0958",
    "Emoji: 👍 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🤖🚀 🧑🏿‍💻",
    "CJK: 你好，世界！日本語のテキスト、カタカナ。한국어 텍스트",
    "Arabic: مرحبا بالعالم، كيف حالك؟ Hebrew: שלום עולם",
    "Accents: café naïve façade Ångström Ωμέγα ∑∫√≈ e\u0301",
    "I'm sure they'll say we've done it, can't they? It's John's.",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "foo<|im_end|>bar<|endoftext|>baz",
    "<|im_start partial tag <|im_end",
    "fn main() {\n    println!(\"Hello {}\", 42);\n}\n",
    "URL https://example.com/path?q=1&r=two#frag and email a.b@c.de",
    "\u00a0no-break\u2009thin\u3000ideographic spaces",
    "Mixed 中文 and English with 123 numbers and 🎉!",
]

SYSTEM = "You are a concise assistant."
CONVERSATIONS = {
    "three_turns_with_system": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Hi! What's the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "And of Germany?"},
        {"role": "assistant", "content": "Berlin."},
        {"role": "user", "content": "Thanks! 👍 One more: Italy?"},
    ],
    "three_turns_without_system": [
        {"role": "user", "content": "Hi! What's the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "And of Germany?"},
        {"role": "assistant", "content": "Berlin."},
        {"role": "user", "content": "  Spaces\n\tand tabs  "},
    ],
}


def main():
    gguf_path = os.path.abspath(sys.argv[1])
    out_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "smollm2_reference.json")
    stub_torch()
    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
    encode = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        encode.append(
            {
                "text": text,
                "ids": ids,
                "ids_with_special": tok.encode(text, add_special_tokens=True),
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            }
        )
    chat = []
    for name, messages in CONVERSATIONS.items():
        for add_generation_prompt in (True, False):
            chat.append(
                {
                    "name": name,
                    "messages": messages,
                    "add_generation_prompt": add_generation_prompt,
                    "rendered": tok.apply_chat_template(
                        messages, tokenize=False, add_generation_prompt=add_generation_prompt
                    ),
                }
            )
    reference = {
        "generated_by": f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}",
        "model": os.path.basename(gguf_path),
        "special": {
            "bos_token": tok.bos_token,
            "bos_token_id": tok.bos_token_id,
            "eos_token": tok.eos_token,
            "eos_token_id": tok.eos_token_id,
            "vocab_size": len(tok),
        },
        "encode": encode,
        "chat": chat,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(reference, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
