"""Greedy generation by mlx-lm, for cross-checks against `adapt`.

    python greedy.py [--dense-f32] MODEL_DIR MAX_TOKENS PROMPT...
    python greedy.py --ids 1,2,3 [--ids 4,5] MODEL_DIR MAX_TOKENS

Loads MODEL_DIR with `mlx_lm.load`, renders each PROMPT as one user message with the
tokenizer's chat template (add_generation_prompt=True), and generates with temperature 0
(`generate_step` with an argmax sampler) for MAX_TOKENS tokens or until an end-of-sequence
token (which is included in "ids"). With `--ids`, the prompts are raw token ids and no
tokenizer is needed (the folder may hold only config.json and weights); generation then
stops only at MAX_TOKENS. Prints JSON on stdout:

    [{"prompt": ..., "prompt_ids": [...], "ids": [...]}]
"""

import argparse
import json
from pathlib import Path

import mlx.core as mx
from mlx_lm import load
from mlx_lm.generate import generate_step
from mlx_lm.utils import dequantize_model, load_model


def held(model, dense_f32):
    if dense_f32:
        model = dequantize_model(model)
        model.set_dtype(mx.float32)
        mx.eval(model.parameters())
    return model


def greedy(logprobs):
    return mx.argmax(logprobs, axis=-1)


def generate(model, prompt_ids, max_tokens, eos):
    out = []
    for token, _ in generate_step(
        mx.array(prompt_ids), model, max_tokens=max_tokens, sampler=greedy
    ):
        token = int(token)
        out.append(token)
        if token in eos:
            break
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("max_tokens", type=int)
    parser.add_argument("prompts", nargs="*")
    parser.add_argument(
        "--dense-f32",
        action="store_true",
        help="dequantize and compute in float32 (how Adapt holds weights on MLX's CPU backend)",
    )
    parser.add_argument(
        "--ids",
        action="append",
        default=[],
        metavar="A,B,C",
        help="a prompt as comma-separated token ids (repeatable); skips the tokenizer",
    )
    args = parser.parse_args()
    if args.ids and args.prompts:
        parser.error("give either text prompts or --ids, not both")
    if not args.ids and not args.prompts:
        parser.error("no prompt given")

    results = []
    if args.ids:
        model, _ = load_model(args.model_dir)
        model = held(model, args.dense_f32)
        for text in args.ids:
            prompt_ids = [int(t) for t in text.split(",") if t.strip()]
            ids = generate(model, prompt_ids, args.max_tokens, set())
            results.append({"prompt": text, "prompt_ids": prompt_ids, "ids": ids})
    else:
        model, tokenizer = load(str(args.model_dir))
        model = held(model, args.dense_f32)
        eos = set(tokenizer.eos_token_ids)
        for prompt in args.prompts:
            prompt_ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}],
                add_generation_prompt=True,
                tokenize=True,
            )
            if isinstance(prompt_ids, dict):
                prompt_ids = prompt_ids["input_ids"]
            prompt_ids = [int(t) for t in prompt_ids]
            ids = generate(model, prompt_ids, args.max_tokens, eos)
            results.append({"prompt": prompt, "prompt_ids": prompt_ids, "ids": ids})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
