"""Continues a saved prompt cache with mlx-lm, for cross-checks against `adapt`.

    python continue_cache.py [--dense-f32] MODEL_DIR CACHE.safetensors TOKEN MAX_TOKENS

Loads MODEL_DIR with `mlx_lm.load` and the cache with `mlx_lm.models.cache.load_prompt_cache`,
feeds TOKEN (the prompt's last token, which the cache does not hold yet) and generates
greedily for MAX_TOKENS tokens or until an end-of-sequence token (included). With
`--dense-f32` the weights are dequantized and computed in float32, as Adapt holds them on
MLX's CPU backend. Prints JSON: {"offset": <cached positions>, "ids": [...]}.
"""

import argparse
import json

import mlx.core as mx
from mlx_lm import load
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import load_prompt_cache
from mlx_lm.utils import dequantize_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("cache")
    parser.add_argument("token", type=int)
    parser.add_argument("max_tokens", type=int)
    parser.add_argument("--dense-f32", action="store_true")
    args = parser.parse_args()

    model, tokenizer = load(args.model_dir)
    if args.dense_f32:
        model = dequantize_model(model)
        model.set_dtype(mx.float32)
    cache = load_prompt_cache(args.cache)
    offset = cache[0].offset
    eos = set(tokenizer.eos_token_ids)
    ids = []
    for token, _ in generate_step(
        mx.array([args.token]),
        model,
        max_tokens=args.max_tokens,
        sampler=lambda logprobs: mx.argmax(logprobs, axis=-1),
        prompt_cache=cache,
    ):
        ids.append(int(token))
        if ids[-1] in eos:
            break
    print(json.dumps({"offset": offset, "ids": ids}))


if __name__ == "__main__":
    main()
