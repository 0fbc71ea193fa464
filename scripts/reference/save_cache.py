"""mlx-lm's side of a prompt cache it saves and Adapt continues.

    save_cache.py MODEL_DIR CACHE.safetensors IDS NEXT

Loads the model folder MODEL_DIR (weights only: the parity fixtures have no tokenizer),
processes the comma-separated token ids IDS through a fresh prompt cache, saves it with
`save_prompt_cache`, then feeds NEXT and prints {"logits": [...]} (float32) for it.
"""

import json
import sys
from pathlib import Path

import mlx.core as mx
from mlx_lm.models.cache import make_prompt_cache, save_prompt_cache
from mlx_lm.utils import load_model


def main(model_dir, path, ids, nxt):
    model, _ = load_model(Path(model_dir))
    cache = make_prompt_cache(model)
    model(mx.array([[int(i) for i in ids.split(",")]]), cache=cache)
    mx.eval([c.state for c in cache])
    save_prompt_cache(path, cache)
    logits = model(mx.array([[int(nxt)]]), cache=cache)[0, -1].astype(mx.float32)
    print(json.dumps({"logits": logits.tolist()}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
