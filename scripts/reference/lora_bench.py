"""`mlx_lm.lora` with its training reports printed as JSON lines (`{"iteration": …,
"tokens_per_second": …, "peak_memory": GB, …}`), for scripts/bench-train.sh: its terminal
output no longer shows the peak memory. Arguments are mlx_lm.lora's.

MLX's peak-memory counter is reset when training starts (after the model is loaded), so the
peak mlx-lm reports spans what Adapt's does: the training session, not the load."""

import json
import sys

import mlx.core as mx

import mlx_lm.lora as lora
from mlx_lm.tuner.callbacks import TrainingCallback


class JsonReports(TrainingCallback):
    def on_train_loss_report(self, train_info):
        print("REPORT " + json.dumps({k: float(v) for k, v in train_info.items()}), flush=True)


def train_from_a_reset_peak(*args, _train=lora.train, **kwargs):
    mx.reset_peak_memory()
    return _train(*args, **kwargs)


lora.get_reporting_callbacks = lambda *args, **kwargs: JsonReports()
lora.train = train_from_a_reset_peak
sys.argv = ["mlx_lm.lora"] + sys.argv[1:]
lora.main()
