"""mlx-lm's side of prompt caches exchanged with Adapt.

    save_cache.py MODEL_DIR CACHE.safetensors IDS NEXT
    save_cache.py --continue MODEL_DIR CACHE.safetensors NEXT

Loads the model folder MODEL_DIR (weights only: the parity fixtures have no tokenizer).
The first form processes the comma-separated token ids IDS through a fresh prompt cache and
saves it with `save_prompt_cache`; the second loads CACHE (saved by Adapt) with
`load_prompt_cache`. Both then feed NEXT and print {"logits": [...]} (float32) for it.
"""

import json
import sys
from pathlib import Path

import mlx.core as mx
from mlx_lm.models.cache import load_prompt_cache, make_prompt_cache, save_prompt_cache
from mlx_lm.utils import load_model


def next_logits(model, cache, nxt):
    logits = model(mx.array([[int(nxt)]]), cache=cache)[0, -1].astype(mx.float32)
    print(json.dumps({"logits": logits.tolist()}))


def save(model_dir, path, ids, nxt):
    model, _ = load_model(Path(model_dir))
    cache = make_prompt_cache(model)
    model(mx.array([[int(i) for i in ids.split(",")]]), cache=cache)
    mx.eval([c.state for c in cache])
    save_prompt_cache(path, cache)
    next_logits(model, cache, nxt)


def resume(model_dir, path, nxt):
    model, _ = load_model(Path(model_dir))
    next_logits(model, load_prompt_cache(path), nxt)


if __name__ == "__main__":
    if sys.argv[1] == "--continue":
        resume(*sys.argv[2:5])
    else:
        save(*sys.argv[1:5])
