"""`mlx_lm.lora` for one setting of `adapt bench train --reference`: the model is held as
Adapt holds it before training — `--base dense`: every quantized layer dequantized;
`--base quantized`: a float model quantized to 4 bits in groups of 64 (a quantized one kept) —
with float parameters in `--dtype` (Adapt's choice for the backend: float32 on the CPU).
Chats and completions end where Adapt's trained tokens end: at the template's end-of-turn
token, without the whitespace the template writes after it (mlx-lm would train that newline
too), and the loss covers the tokens from the prompt's end to the sequence's end: mlx-lm
0.32.2's default loss also counts the position one past each sequence's last token (a padding
target), so it would train and validate on one more token per example than Adapt does. With
both changes the two sides train and validate on the same tokens.
Every training report is printed as a JSON line (`REPORT {...}`, one per step with
`--steps-per-report 1`) and, after the last step, the validation loss over the whole
validation split (`VAL {...}`). MLX's peak-memory counter is reset when training starts.
With `ADAPT_TRACE=1` the graph of the trainer's second step (what its one evaluation a step
runs: forward, backward and update) is counted by primitive kind, from MLX's DOT export, and
printed to standard error as a `trace:` line, as Adapt counts its own.
Other arguments are mlx_lm.lora's."""

import argparse
import collections
import io
import json
import os
import re
import sys

import mlx.core as mx
import mlx.nn as nn

import mlx_lm.lora as lora
from mlx_lm.tuner.callbacks import TrainingCallback
from mlx_lm.tuner.datasets import ChatDataset, CompletionsDataset
from mlx_lm.tuner.trainer import evaluate
from mlx_lm.utils import dequantize_model

ours = argparse.ArgumentParser()
ours.add_argument("--base", choices=["dense", "quantized"], required=True)
ours.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], required=True)
setting, rest = ours.parse_known_args()


class JsonReports(TrainingCallback):
    def on_train_loss_report(self, train_info):
        print("REPORT " + json.dumps({k: float(v) for k, v in train_info.items()}), flush=True)


def load_as_adapt_holds_it(*args, _load=lora.load, **kwargs):
    model, tokenizer = _load(*args, **kwargs)
    quantized = any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules())
    if setting.base == "dense" and quantized:
        model = dequantize_model(model)
    if setting.base == "quantized" and not quantized:
        nn.quantize(model, group_size=64, bits=4)
    model.set_dtype(getattr(mx, setting.dtype))
    return model, tokenizer


def ending_at_the_end_of_turn(cls):
    process = cls.process

    def trimmed(self, d):
        tokens, offset = process(self, d)
        tokens = list(tokens)
        while len(tokens) > offset + 1 and not self.tokenizer.decode(tokens[-1:]).strip():
            tokens.pop()
        return tokens, offset

    cls.process = trimmed


def same_tokens_loss(model, batch, lengths):
    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(inputs)
    predicted = mx.arange(1, targets.shape[1] + 1)
    mask = mx.logical_and(predicted >= lengths[:, 0:1], predicted < lengths[:, 1:])
    ce = nn.losses.cross_entropy(logits, targets) * mask
    ntoks = mask.sum()
    return ce.astype(mx.float32).sum() / ntoks, ntoks


def train_then_evaluate(*args, _train=lora.train, **kwargs):
    mx.reset_peak_memory()
    _train(*args, loss=same_tokens_loss, **kwargs)
    targs = kwargs["args"]
    val_loss = evaluate(
        model=kwargs["model"],
        dataset=kwargs["val_dataset"],
        batch_size=targs.batch_size,
        num_batches=-1,
        max_seq_length=targs.max_seq_length,
        loss=same_tokens_loss,
    )
    print("VAL " + json.dumps({"val_loss": float(val_loss)}), flush=True)


def counting_the_second_step():
    """Wraps `mx.eval` so the trainer's per-step evaluation (its only call with four
    arguments: state, losses, tokens, accumulated gradients) has its second graph counted."""
    from mlx.utils import tree_flatten

    evaluate_now, seen = mx.eval, [0]

    def counted(*args, **kwargs):
        if len(args) == 4:
            seen[0] += 1
            if seen[0] == 2:
                arrays = [v for _, v in tree_flatten(list(args)) if isinstance(v, mx.array)]
                dot = io.StringIO()
                mx.export_to_dot(dot, *arrays)
                kinds = collections.Counter(
                    re.findall(r'label ="([^"]+)", shape=rectangle', dot.getvalue())
                )
                top = ", ".join(f"{k} {n}" for k, n in kinds.most_common(12))
                more = max(len(kinds) - 12, 0)
                top += f", {more} more kinds" if more else ""
                print(f"trace: mlx-lm step 2 graph: {sum(kinds.values())} primitives: {top}",
                      file=sys.stderr, flush=True)
        return evaluate_now(*args, **kwargs)

    mx.eval = counted


if os.environ.get("ADAPT_TRACE") == "1":
    counting_the_second_step()
ending_at_the_end_of_turn(ChatDataset)
ending_at_the_end_of_turn(CompletionsDataset)
lora.get_reporting_callbacks = lambda *args, **kwargs: JsonReports()
lora.load = load_as_adapt_holds_it
lora.train = train_then_evaluate
sys.argv = ["mlx_lm.lora"] + rest
lora.main()
