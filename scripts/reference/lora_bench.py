"""`mlx_lm.lora` with its training reports printed as JSON lines (`{"iteration": …,
"tokens_per_second": …, "peak_memory": GB, …}`), for scripts/bench-train.sh: its terminal
output no longer shows the peak memory. Arguments are mlx_lm.lora's."""

import json
import sys

import mlx_lm.lora as lora
from mlx_lm.tuner.callbacks import TrainingCallback


class JsonReports(TrainingCallback):
    def on_train_loss_report(self, train_info):
        print("REPORT " + json.dumps({k: float(v) for k, v in train_info.items()}), flush=True)


lora.get_reporting_callbacks = lambda *args, **kwargs: JsonReports()
sys.argv = ["mlx_lm.lora"] + sys.argv[1:]
lora.main()
