"""mlx-lm's logits for model folders.

    folder_logits.py IDS DIR [DIR ...]
        loads each model folder with mlx-lm (mlx_lm.utils.load_model: its own model class,
        strict weight loading) and prints {DIR: [[...], ...]}: the float32 logits of one
        forward pass over the comma-separated token ids IDS.
"""

import json
import sys
from pathlib import Path

import mlx.core as mx
import mlx_compat  # noqa: F401  (quantized experts on this MLX)
from mlx_lm.utils import load_model


def main():
    ids = mx.array([[int(i) for i in sys.argv[1].split(",")]])
    out = {}
    for folder in sys.argv[2:]:
        model, _ = load_model(Path(folder))
        out[folder] = model(ids)[0].astype(mx.float32).tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
