"""mlx-lm's side of the adapter round trip.

    adapter_logits.py logits MODEL_DIR ADAPTER_DIR IDS
        loads MODEL_DIR with the adapter folder ADAPTER_DIR (mlx-lm's load_adapters) and
        prints {"logits": [[...], ...]} for the comma-separated token ids IDS, in float32.
    adapter_logits.py make MODEL_DIR OUT_DIR lora|dora NUM_LAYERS RANK SEED
        attaches fresh mlx-lm adapters, gives them random non-zero weights (a trained
        adapter's stand-in) and saves them as mlx-lm's trainer does.
"""

import json
import sys
from pathlib import Path

import mlx.core as mx
import mlx_compat  # noqa: F401  (quantized experts on this MLX)
from mlx.utils import tree_flatten
from mlx_lm.tuner.utils import linear_to_lora_layers, load_adapters
from mlx_lm.utils import load_model


def logits(model_dir, adapter_dir, ids):
    model, _ = load_model(Path(model_dir))
    load_adapters(model, adapter_dir)
    x = mx.array([[int(i) for i in ids.split(",")]])
    out = model(x)[0].astype(mx.float32)
    print(json.dumps({"logits": out.tolist()}))


def make(model_dir, out_dir, kind, num_layers, rank, seed):
    mx.random.seed(int(seed))
    model, _ = load_model(Path(model_dir))
    model.freeze()
    params = {"rank": int(rank), "scale": 20.0, "dropout": 0.0}
    linear_to_lora_layers(model, int(num_layers), params, use_dora=kind == "dora")
    trainable = dict(tree_flatten(model.trainable_parameters()))
    updated = {}
    for name, value in trainable.items():
        if name.endswith("lora_b"):
            value = 0.01 * mx.random.normal(value.shape)
        elif name.endswith(".m"):
            value = value * (1.0 + 0.05 * mx.random.normal(value.shape))
        updated[name] = value
    model.load_weights(list(updated.items()), strict=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), updated)
    config = {
        "fine_tune_type": kind,
        "num_layers": int(num_layers),
        "lora_parameters": params,
    }
    (out / "adapter_config.json").write_text(json.dumps(config, indent=4))


if __name__ == "__main__":
    if sys.argv[1] == "logits":
        logits(*sys.argv[2:5])
    elif sys.argv[1] == "make":
        make(*sys.argv[2:8])
    else:
        sys.exit(__doc__)
