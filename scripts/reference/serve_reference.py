"""mlx-lm's own server (`mlx_lm.server`) on a model folder, holding the weights as Adapt holds
them on this backend (CPU: dense f32; GPU: as stored), for scripts/bench-serve.sh.

Usage: python serve_reference.py MODEL_DIR PORT
"""

import sys

import mlx.core as mx
from mlx_lm import server
from mlx_lm.utils import dequantize_model

folder, port = sys.argv[1], sys.argv[2]
original = server.ModelProvider.load


def load(self, *args, **kwargs):
    result = original(self, *args, **kwargs)
    if mx.default_device() != mx.gpu and self.model is not None:
        self.model = dequantize_model(self.model)
        self.model.set_dtype(mx.float32)
        mx.eval(self.model.parameters())
    return result


server.ModelProvider.load = load
sys.argv = ["mlx_lm.server", "--model", folder, "--port", port, "--host", "127.0.0.1"]
server.main()
