"""Adapt against mlx-lm on one GPU, in one lease: correctness, then speed.

Runs on the device (see scripts/gpu/device.sh), with MLX's CUDA runtime and mlx-lm importable
and `adapt` / `logits` (our binaries) in $ADAPT_GPU_WORK. Every stage writes what it found
into $OUT/results.json as soon as it ends, so a lease cut short still reports; a stage that
fails records its error and the suite goes on.

Stages (`suite.py STAGE…`, default all): doctor, bandwidth, models, fallback, decode, chat,
train, precision, bench_train, trace, parity, greedy, grad_eval, chat_jit, versus,
train_versus, train_compiled, compiled_memory, mlx_env, mlx_env_versus, census, decode_versus.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("ADAPT_GPU_WORK", "/tmp/adapt-gpu"))
OUT = Path(os.environ.get("OUT", WORK / "out"))
ADAPT = WORK / "adapt"
LOGITS = WORK / "logits"
MODELS = WORK / "models"
SMOL = WORK / "smollm2"
PY = sys.executable
# `adapt bench train`'s arguments for mlx-lm's `lora` beside it, with this Python.
REFERENCE = ["--reference", "--reference-python", PY]
# `ADAPT_GPU_REFERENCE=0`: the before-and-after stages leave mlx-lm out.
WITH_REFERENCE = os.environ.get("ADAPT_GPU_REFERENCE", "1") == "1"
RESULTS = OUT / "results.json"

# Llama shapes with SmolLM2's tokenizer (vocabulary 49,152): Llama 3.2 1B and Llama 3 8B.
SHAPES = {
    # Sixteen thin layers: the device's work per token is negligible, so decoding it measures
    # each side's own cost per token (building the graph, launching kernels, reading tokens).
    "tiny": dict(hidden_size=64, num_hidden_layers=16, intermediate_size=256,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
    "1b": dict(hidden_size=2048, num_hidden_layers=16, intermediate_size=8192,
               num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, num_hidden_layers=32, intermediate_size=14336,
               num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
}
PROMPT, GENERATE, RUNS = 512, 128, 3

results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save():
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))


def log(*parts):
    line = " ".join(str(p) for p in parts)
    print(line, flush=True)
    with open(OUT / "suite.log", "a") as f:
        f.write(line + "\n")


def sh(cmd, timeout=600, env=None, stderr=False):
    """Runs `cmd`; returns its stdout (and its stderr, with `stderr`); raises with its stderr's
    tail when it fails."""
    started = time.time()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    log(f"$ {' '.join(str(c) for c in cmd)[:200]}  ({time.time() - started:.1f} s, rc {p.returncode})")
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {p.stderr[-2000:]}")
    return (p.stdout, p.stderr) if stderr else p.stdout


def last_json(text):
    """`text` as JSON, else its last line that is a JSON value."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no JSON in: {text[-500:]}")


def stage(name):
    def wrap(fn):
        def run():
            started = time.time()
            log(f"== {name}")
            try:
                results[name] = fn()
            except Exception as e:  # noqa: BLE001 - recorded and reported, the suite goes on
                results[name] = {"error": f"{type(e).__name__}: {e}"[:3000]}
                traceback.print_exc()
            results.setdefault("seconds", {})[name] = round(time.time() - started, 1)
            save()
        run.stage = name
        return run
    return wrap


@stage("doctor")
def doctor():
    report = json.loads(sh([ADAPT, "doctor", "--json"]))
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout
    return {"adapt": report["device"], "nvidia_smi": smi.strip()}


def attempt(cmd, env=None, timeout=600):
    """Runs `cmd` whatever its exit status: {rc, stdout, stderr} (the streams' tails)."""
    started = time.time()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    log(f"$ {' '.join(str(c) for c in cmd)[:200]}  ({time.time() - started:.1f} s, rc {p.returncode})")
    return {"rc": p.returncode, "stdout": p.stdout[-4000:], "stderr": p.stderr[-2000:]}


@stage("fallback")
def fallback():
    """The device chosen at start: the GPU as it is; `cpu` takes the CPU beside a working GPU.
    With every CUDA device hidden, MLX's CUDA build cannot compute at all (it takes all its
    memory, the CPU's arrays too, from the CUDA driver), so `auto` starts the program again on
    MLX's CPU runtime — named by ADAPT_CPU_RUNTIME, or found in the library search path after
    the CUDA one — and says why; `gpu` refuses with device.gpu_unavailable; with no CPU runtime
    to be found `auto` refuses saying where it looked and what to set. A command that computes
    (generate) runs on the CPU the same way and says so once."""
    cuda_lib = WORK / "site" / "mlx" / "lib"
    cpu_lib = WORK / "cpu" / "mlx" / "lib"
    hidden = {"CUDA_VISIBLE_DEVICES": "", "ADAPT_DEVICE": ""}
    named = {**hidden, "ADAPT_CPU_RUNTIME": str(cpu_lib)}
    # The CUDA runtime first in the search path, the CPU one after it.
    searched = {**hidden, "LD_LIBRARY_PATH": f"{cuda_lib}:{cpu_lib}"}
    out = {}
    for name, args, env in (("auto", [], {"ADAPT_DEVICE": ""}),
                            ("gpu", ["--device", "gpu"], {"ADAPT_DEVICE": ""}),
                            ("cpu", ["--device", "cpu"], {"ADAPT_DEVICE": ""}),
                            ("hidden_auto_named", [], named),
                            ("hidden_auto_searched", [], searched),
                            ("hidden_auto_none", [], hidden),
                            ("hidden_gpu", ["--device", "gpu"], named)):
        r = attempt([ADAPT, *args, "doctor", "--json"], env=env)
        device = json.loads(r["stdout"])["device"] if r["rc"] == 0 else None
        out[name] = {"rc": r["rc"], "choice": device and device["choice"],
                     "runtime": device and device["runtime"],
                     "backend": device and device["backend"], "stderr": r["stderr"]}
        save()
    tiny = model_dir("tiny", "bf16")
    model = tiny if (tiny / "config.json").exists() else model_dir("1b", "bf16")
    r = attempt([ADAPT, "generate", "--model", model, "--prompt", "Hi", "--max-tokens", 4],
                env=named)
    out["hidden_generate"] = {"rc": r["rc"], "stdout": r["stdout"], "stderr": r["stderr"],
                              "model": str(model)}
    refused = lambda r: r["rc"] == 1 and "device.gpu_unavailable" in r["stderr"]

    def restarted(r):
        c = r["choice"] or {}
        return (r["rc"] == 0 and r["runtime"] == "Cpu" and c.get("fell_back") is True
                and "CUDA_VISIBLE_DEVICES" in c.get("reason", "")
                and "started again on MLX's CPU runtime" in c.get("reason", ""))
    out["checks"] = {
        "auto_on_gpu": out["auto"]["backend"] not in (None, "Cpu"),
        "gpu_on_gpu": out["gpu"]["rc"] == 0,
        "cpu_asked": out["cpu"]["backend"] == "Cpu",
        "hidden_auto_restarted_on_named_cpu_runtime": restarted(out["hidden_auto_named"]),
        "hidden_auto_restarted_on_searched_cpu_runtime": restarted(out["hidden_auto_searched"]),
        "hidden_auto_without_cpu_runtime_refused": refused(out["hidden_auto_none"])
        and "ADAPT_CPU_RUNTIME" in out["hidden_auto_none"]["stderr"],
        "hidden_gpu_refused": refused(out["hidden_gpu"]),
        "hidden_generate_on_cpu_said_once": r["rc"] == 0
        and r["stderr"].count("Running on the CPU: ") == 1,
    }
    return out


@stage("bandwidth")
def bandwidth():
    """The card's copy bandwidth as MLX sees it: bytes read and written by a large copy."""
    import mlx.core as mx
    a = mx.random.uniform(shape=(1 << 30,)).astype(mx.bfloat16)  # 2 GiB
    mx.eval(a)
    times = []
    for _ in range(7):
        started = time.perf_counter()
        b = a + 1
        mx.eval(b)
        times.append(time.perf_counter() - started)
        del b
    seconds = statistics.median(times[2:])
    return {"bytes_per_second": 2 * a.nbytes / seconds, "array_bytes": a.nbytes}


def model_dir(shape, quant):
    return MODELS / f"{shape}-{quant}"


@stage("models")
def models():
    """Random-weight Llama folders made and saved by mlx-lm's own classes, bf16 and 4-bit."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.models import llama
    from mlx_lm.utils import quantize_model, save_config, save_model

    made = {}
    only = os.environ.get("ADAPT_GPU_SHAPES")
    for shape, dims in SHAPES.items():
        config = dict(model_type="llama", vocab_size=49152, rms_norm_eps=1e-5,
                      rope_theta=500000.0, max_position_embeddings=8192, **dims)
        for quant in ("bf16", "q4") if shape != "tiny" else ("bf16",):
            if only and f"{shape}-{quant}" not in only.split(","):
                continue
            out = model_dir(shape, quant)
            if (out / "config.json").exists():
                made[f"{shape}-{quant}"] = str(out)
                continue
            mx.random.seed(0)
            model = llama.Model(llama.ModelArgs(**config))
            model.set_dtype(mx.bfloat16)
            saved = dict(config)
            if quant == "q4":
                model, saved = quantize_model(model, saved, 64, 4)
            mx.eval(model.parameters())
            out.mkdir(parents=True, exist_ok=True)
            save_model(out, model)
            save_config(saved, out / "config.json")
            for name in ("tokenizer.json", "tokenizer_config.json"):
                (out / name).write_bytes((WORK / "tokenizer" / name).read_bytes())
            made[f"{shape}-{quant}"] = str(out)
            del model
    return made


def mlx_lm_logits(path, ids, steps):
    """mlx-lm's logits of every position, and its greedy continuation (when `steps`)."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from mlx_lm.utils import load_model

    model, _ = load_model(Path(path))
    full = model(mx.array([ids]))[0].astype(mx.float32)
    greedy = []
    if steps:
        for token, _ in generate_step(mx.array(ids), model, max_tokens=steps,
                                      sampler=lambda x: mx.argmax(x, axis=-1)):
            greedy.append(int(token))
    return full.tolist(), greedy


@stage("parity")
def parity():
    """Every parity fixture as stored (f32 / f16 / bf16 / quantized kernels) on this GPU:
    our logits (one pass and step by step) against mlx-lm's computed here.
    `ADAPT_GPU_PARITY` (comma-separated fixture names) runs only those."""
    out = {}
    only = os.environ.get("ADAPT_GPU_PARITY")
    for case in sorted(p for p in (ROOT / "tests/fixtures/parity").iterdir() if p.is_dir()):
        if only and case.name not in only.split(","):
            continue
        ref = json.loads((case / "reference.json").read_text())
        ids = ref["ids"]
        try:
            ours = last_json(sh([LOGITS, case, ",".join(map(str, ids)), "--all"]))
            theirs, _ = mlx_lm_logits(case, ids, 0)
        except Exception as e:  # noqa: BLE001 - one case's failure is recorded, the rest run
            out[case.name] = {"error": f"{type(e).__name__}: {e}"[:1500]}
            continue
        span = max(max(r) for r in theirs) - min(min(r) for r in theirs)
        diff = lambda x, y: max(abs(a - b) for ra, rb in zip(x, y) for a, b in zip(ra, rb))
        d_full = diff(ours["logits"], theirs)
        d_step = diff(ours["stepped"], theirs)
        # Which side parts from the stored reference (mlx-lm's logits on MLX's CPU backend):
        # ours as stored, ours dense f32, and mlx-lm's here.
        cpu = ref["logits"]
        try:
            dense = last_json(sh([LOGITS, case, ",".join(map(str, ids)), "--all", "--dense"]))
            d_dense = diff(dense["logits"], cpu)
        except Exception as e:  # noqa: BLE001 - a diagnosis only
            d_dense = f"{type(e).__name__}: {e}"[:300]
        out[case.name] = {"dtype": ref["dtype"], "quantized": ref["quantized"],
                          "max_abs_diff": d_full, "max_abs_diff_stepped": d_step,
                          "ours_vs_cpu_reference": diff(ours["logits"], cpu),
                          "mlx_lm_here_vs_cpu_reference": diff(theirs, cpu),
                          "ours_dense_vs_cpu_reference": d_dense,
                          "logit_range": span, "loaded_as": ours["loaded_as"]}
        log(f"{case.name}: one pass {d_full:.2e}, stepped {d_step:.2e}, range {span:.2f}; "
            f"against the CPU reference: ours {out[case.name]['ours_vs_cpu_reference']:.2e}, "
            f"mlx-lm here {out[case.name]['mlx_lm_here_vs_cpu_reference']:.2e}")
    return out


@stage("greedy")
def greedy():
    """Greedy continuations token for token: SmolLM2 (converted folder) and the 1B shape."""
    from mlx_lm.utils import load_tokenizer

    out = {}
    tokenizer = load_tokenizer(WORK / "tokenizer")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt = list(tokenizer.encode(text, add_special_tokens=False))
    for name, path in [("smollm2", SMOL), ("1b-bf16", model_dir("1b", "bf16")),
                       ("1b-q4", model_dir("1b", "q4"))]:
        if not (Path(path) / "config.json").exists():
            out[name] = {"error": f"{path} is missing"}
            continue
        ours = last_json(sh([LOGITS, path, ",".join(map(str, prompt)), "--steps", "32"]))
        _, theirs = mlx_lm_logits(path, prompt, 32)
        same = 0
        for a, b in zip(ours["greedy"], theirs):
            if a != b:
                break
            same += 1
        d_last = max(abs(a - b) for a, b in zip(ours["logits"][-1], mlx_lm_logits(path, prompt, 0)[0][-1]))
        out[name] = {"ours": ours["greedy"], "mlx_lm": theirs, "equal_prefix": same,
                     "equal": ours["greedy"] == theirs, "last_logits_max_abs_diff": d_last,
                     "loaded_as": ours["loaded_as"]}
        log(f"{name}: {same} of 32 tokens equal")
    return out


@stage("decode")
def decode():
    """Prefill, decode, time to first token and peak memory, ours and mlx-lm's, alternating,
    each the median of RUNS after a warm-up, with the bandwidth ceiling of decoding."""
    bw = results.get("bandwidth", {}).get("bytes_per_second")
    out = {}
    for key in ("tiny-bf16", "1b-bf16", "1b-q4", "8b-bf16", "8b-q4"):
        shape, quant = key.split("-")
        path = model_dir(shape, quant)
        weights = sum(f.stat().st_size for f in path.glob("*.safetensors"))
        ours = last_json(sh([ADAPT, *bench_decode(path)]))
        theirs = last_json(sh(mlx_lm_decode(path)))
        row = {"weight_bytes": weights, "ours": ours, "mlx_lm": theirs}
        if bw:
            row["ceiling_tokens_per_second"] = bw / weights
        out[key] = row
        log(f"{key}: decode {ours.get('decode_tokens_per_second', 0):.1f} vs "
            f"{theirs.get('decode_tokens_per_second', 0):.1f} tok/s")
        save()
    return out


@stage("chat")
def chat():
    """The chat cache on the 8B 4-bit shape: cold, warm, save and reopen, twice in a row (the
    second run meets the kernels the first compiled)."""
    path = model_dir("8b", "q4")
    runs = []
    for _ in range(2):
        runs.append(last_json(sh([ADAPT, "bench", "--model", path, "--chat-history", 4000,
                                  "--json"])))
        save()
    theirs = last_json(sh([PY, ROOT / "scripts/gpu/probe.py", "chat", path, 4000]))
    return {"runs": runs, "mlx_lm": theirs}


@stage("train")
def train():
    """LoRA on the 1B shape in bf16 and QLoRA on the 8B 4-bit shape: ours and mlx-lm's on the
    same data, seed and settings (one batch of every example, so both see the same batches),
    losses step by step, trained tokens per second and peak memory."""
    data = WORK / "train-data"
    data.mkdir(exist_ok=True)
    examples = [json.loads(l) for l in (ROOT / "examples/blue-lantern.jsonl").read_text().splitlines() if l.strip()]
    lines = "\n".join(json.dumps(e) for e in examples) + "\n"
    (data / "train.jsonl").write_text(lines)
    (data / "valid.jsonl").write_text(lines)
    out = {}
    for key, iters in (("1b-bf16", 20), ("8b-q4", 10)):
        shape, quant = key.split("-")
        path = model_dir(shape, quant)
        batch = len(examples)
        settings = ["--iters", iters, "--batch-size", batch, "--num-layers", 8,
                    "--learning-rate", "1e-4", "--seed", 0]
        ours_dir = WORK / f"adapt-data-{key}"
        ours = sh([ADAPT, "train", "--model", path, "--data", data / "train.jsonl",
                   "--valid-ratio", 0, "--steps-per-report", 1, "--save-every", 1000,
                   "--json", *settings], env={"ADAPT_DATA_DIR": str(ours_dir)})
        reports = [json.loads(l) for l in ours.splitlines() if l.startswith("{")]
        theirs = sh([PY, ROOT / "scripts/reference/lora_bench.py", "--model", path, "--train",
                     "--data", data, "--steps-per-report", 1, "--mask-prompt",
                     "--adapter-path", WORK / f"mlx-lm-adapters-{key}", *settings])
        their_reports = [json.loads(l[len("REPORT "):]) for l in theirs.splitlines()
                         if l.startswith("REPORT ")]
        out[key] = {"ours": reports, "mlx_lm": their_reports}
        save()
    return out


@stage("precision")
def precision():
    """Mixed precision: LoRA on the 1B shape and QLoRA on the 8B 4-bit shape trained with
    `--precision f32`, `bf16` and `auto` (same data, seed and settings): losses step by step,
    the largest relative difference of bf16's from f32's, trained tokens per second and peak
    memory. Needs the `models` stage's folders."""
    data = WORK / "train-data"
    data.mkdir(exist_ok=True)
    examples = [json.loads(l) for l in (ROOT / "examples/blue-lantern.jsonl").read_text().splitlines() if l.strip()]
    (data / "train.jsonl").write_text("\n".join(json.dumps(e) for e in examples) + "\n")
    out = {}
    for key in ("1b-bf16", "8b-q4"):
        shape, quant = key.split("-")
        runs = {}
        for p in ("f32", "bf16", "auto"):
            ours = sh([ADAPT, "train", "--model", model_dir(shape, quant), "--data",
                       data / "train.jsonl", "--valid-ratio", 0, "--steps-per-report", 1,
                       "--save-every", 1000, "--json", "--precision", p, "--iters", 10,
                       "--batch-size", len(examples), "--num-layers", 8, "--learning-rate",
                       "1e-4", "--seed", 0],
                      env={"ADAPT_DATA_DIR": str(WORK / f"adapt-data-precision-{key}-{p}")})
            lines = [json.loads(l) for l in ours.splitlines() if l.startswith("{")]
            outcome = next(l["outcome"] for l in lines if "outcome" in l)
            reports = [l for l in lines if l.get("type") == "report"]
            runs[p] = {"losses": outcome["losses"], "peak_memory": outcome["peak_memory"],
                       "seconds": outcome["seconds"], "trained_tokens": outcome["trained_tokens"],
                       "last_report": reports[-1] if reports else None}
            out[key] = runs
            save()
        pairs = zip(runs["f32"]["losses"], runs["bf16"]["losses"])
        runs["bf16_vs_f32_max_relative"] = max(abs(a - b) / a for a, b in pairs)
        save()
    return out


def bench_train_data():
    """The example set as a folder for `adapt bench train`: every example to train on, the
    first four to validate on."""
    data = WORK / "bench-train-data"
    data.mkdir(exist_ok=True)
    lines = [l for l in (ROOT / "examples/blue-lantern.jsonl").read_text().splitlines() if l.strip()]
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    (data / "valid.jsonl").write_text("\n".join(lines[:4]) + "\n")
    return data


def train_rows(found):
    """The figures of `adapt bench train --json`'s rows that the training stages keep."""
    return [{k: r.get(k) for k in ("method", "batch_size", "tokens_per_second",
                                   "steps_per_second", "peak_memory", "first_loss", "last_loss",
                                   "reference")} for r in found["rows"]]


@stage("bench_train")
def bench_train():
    """`adapt bench train` on the 1B shape: LoRA and DoRA on the bf16 base, QLoRA on its 4-bit
    copy, at batch 1 and 4 (a warm-up and 5 measured steps each), with mlx-lm's `lora` on the
    same settings beside each (`--reference`). Needs the `models` stage's folders."""
    data = bench_train_data()
    return last_json(sh([ADAPT, "bench", "train", "--model", model_dir("1b", "bf16"), "--data",
                         data, "--batch-sizes", "1,4", "--steps", 5, *REFERENCE, "--json"],
                        timeout=1500))


@stage("trace")
def trace():
    """Where the time goes, ours (`ADAPT_TRACE=1`) and mlx-lm's (scripts/gpu/probe.py): decode
    steps of the toy and 1B shapes, and the chat turns of the 8B 4-bit shape."""
    out = {}
    for key in ("tiny-bf16", "1b-bf16", "8b-q4"):
        shape, quant = key.split("-")
        path = model_dir(shape, quant)
        if not path.exists():
            continue
        _, ours = sh([ADAPT, *bench_decode(path, runs=2)], env={"ADAPT_TRACE": "1"},
                     stderr=True)
        theirs = last_json(sh([PY, ROOT / "scripts/gpu/probe.py", "decode", path, PROMPT,
                               GENERATE]))
        out[key] = {"ours": [l for l in ours.splitlines() if l.startswith("trace:")][-3:],
                    "mlx_lm": theirs}
        save()
    path = model_dir("8b", "q4")
    _, ours = sh([ADAPT, "bench", "--model", path, "--chat-history", 4000, "--json"],
                 env={"ADAPT_TRACE": "1"}, stderr=True)
    out["chat"] = {"ours": [l for l in ours.splitlines() if l.startswith("trace:")],
                   "mlx_lm": last_json(sh([PY, ROOT / "scripts/gpu/probe.py", "chat", path,
                                           4000]))}
    return out


@stage("grad_eval")
def grad_eval():
    """How a step's gradients are evaluated (`ADAPT_GRAD_EVAL`: each gradient with its own
    wait, a block at a time, each block queued without waiting, all at once), by `adapt bench
    train` on the 1B shape — LoRA on the bf16 base and QLoRA on its 4-bit copy, batch 1 and 4
    — in alternating rounds, with mlx-lm's `lora` beside the first round. Needs `models`."""
    data = bench_train_data()
    out = {}
    rounds = [("each", False), ("block", False), ("queued", False), ("all", False),
              ("each", False), ("block", True)]
    for i, (how, reference) in enumerate(rounds):
        extra = REFERENCE if reference else []
        found = last_json(sh([ADAPT, "bench", "train", "--model", model_dir("1b", "bf16"),
                              "--data", data, "--methods", "lora,qlora", "--batch-sizes", "1,4",
                              "--steps", 5, "--json", *extra], timeout=900,
                             env={"ADAPT_GRAD_EVAL": how}))
        out[f"{i}-{how}"] = train_rows(found)
        results["grad_eval"] = out
        save()
    return out


@stage("chat_jit")
def chat_jit():
    """The warm chat turn on the 8B 4-bit shape with each side's own, first empty, store of
    compiled kernels (`MLX_PTX_CACHE_DIR`): mlx-lm's (`probe.py chat`, two passes in one
    process) and ours (`adapt bench --chat-history 4000`, a warm-up pass and three measured
    ones in one process, `ADAPT_TRACE=1`), each twice, and which kernels each compiled."""
    path = model_dir("8b", "q4")
    out = {}
    for side in ("mlx_lm", "adapt"):
        ptx = WORK / f"ptx-{side}"
        shutil.rmtree(ptx, ignore_errors=True)
        ptx.mkdir(parents=True)
        runs = []
        for run in range(2):
            env = {"MLX_PTX_CACHE_DIR": str(ptx)}
            started = time.time()
            if side == "mlx_lm":
                found = last_json(sh([PY, ROOT / "scripts/gpu/probe.py", "chat", path, 4000],
                                     env=env))
                trace_lines = []
            else:
                stdout, stderr = sh([ADAPT, "bench", "--model", path, "--chat-history", 4000,
                                     "--runs", 3, "--json"], env={**env, "ADAPT_TRACE": "1"},
                                    stderr=True)
                found = last_json(stdout)
                trace_lines = [l for l in stderr.splitlines() if l.startswith("trace: prefill")]
            files = sorted(f.name for f in ptx.rglob("*") if f.is_file())
            runs.append({"seconds": time.time() - started, "result": found,
                         "trace": trace_lines, "ptx_files": files})
            out[side] = runs
            results["chat_jit"] = out
            save()
    return out


def baseline():
    """The earlier build `pack.sh --baseline` packed beside ours, for the before-and-after
    stages."""
    base = WORK / "adapt-baseline"
    if not base.exists():
        raise RuntimeError("no adapt-baseline: pack with scripts/gpu/pack.sh --baseline FILE")
    return base


def bench_decode(path, runs=RUNS):
    """`adapt bench`'s arguments for the decode figures: a `PROMPT`-token prompt, `GENERATE`
    generated, `runs` measured runs after a warm-up, JSON out."""
    return ["bench", "--model", path, "--prompt-tokens", PROMPT, "--generate-tokens", GENERATE,
            "--runs", runs, "--json"]


def mlx_lm_decode(path):
    """mlx-lm's side of `bench_decode`: the same prompt, generation and runs."""
    return [PY, ROOT / "scripts/bench_reference.py", path, PROMPT, GENERATE, RUNS]


def decode_figures(found):
    """The figures of a decode benchmark (either side's) that the before-and-after stages keep."""
    return {k: found.get(k) for k in ("prompt_tokens_per_second", "decode_tokens_per_second",
                                      "time_to_first_token", "peak_memory")}


def bench_train_1b(data, methods="lora,qlora"):
    """`adapt bench train`'s arguments for the before-and-after training stages: the 1B shape
    (LoRA on the bf16 base, QLoRA on its 4-bit copy), batch 1 and 4, 2 warm-up and 15 measured
    steps, JSON out."""
    return ["bench", "train", "--model", model_dir("1b", "bf16"), "--data", data, "--methods",
            methods, "--batch-sizes", "1,4", "--warmup", 2, "--steps", 15, "--json"]


def traced(binary, args, env, keys):
    """A run of `args` with `ADAPT_TRACE=1`: its rows' `keys` and its `trace:` lines."""
    found, text = sh([binary, *args], env={**env, "ADAPT_TRACE": "1"}, stderr=True)
    return {"rows": [{k: r.get(k) for k in keys} for r in last_json(found)["rows"]],
            "lines": [l for l in text.splitlines() if l.startswith("trace:")]}


@stage("versus")
def versus():
    """A change's before and after in one lease: the same benchmarks on `adapt-baseline` (the
    build `pack.sh --baseline` packed beside ours) and on `adapt`, alternating, with mlx-lm's
    beside them — prefill, decode, time to first token (512-token prompt, 128 generated) on
    the 1B bf16 and 8B 4-bit shapes, then the chat cache at 4,000 tokens on the 8B 4-bit one.
    Needs `models` (ADAPT_GPU_SHAPES=1b-bf16,8b-q4 is enough)."""
    base = baseline()
    out = {}
    for key in ("1b-bf16", "8b-q4"):
        path = model_dir(*key.split("-"))
        ours = bench_decode(path)
        rows = []
        for round_ in range(2):
            for side, cmd in (("baseline", [base, *ours]), ("adapt", [ADAPT, *ours]),
                              ("mlx_lm", mlx_lm_decode(path))):
                found = last_json(sh(cmd))
                rows.append({"round": round_, "side": side, **decode_figures(found)})
                out[key] = rows
                results["versus"] = out
                save()
    path = model_dir("8b", "q4")
    rows = []
    for round_ in range(2):
        for side, binary in (("baseline", base), ("adapt", ADAPT)):
            found = last_json(sh([binary, "bench", "--model", path, "--chat-history", 4000,
                                  "--runs", 3, "--json"]))
            rows.append({"round": round_, "side": side, **found})
            out["chat"] = rows
            results["versus"] = out
            save()
    return out


@stage("train_versus")
def train_versus():
    """A training change's before and after in one lease: `adapt bench train` on the 1B shape
    (LoRA on the bf16 base, QLoRA on its 4-bit copy, batch 1 and 4, 2 warm-up and 15 measured
    steps) by `adapt-baseline` and by `adapt`, alternating, `adapt` once more with
    `ADAPT_GRAD_EVAL=each` and once with `block` (how the gradients are evaluated), mlx-lm's
    `lora` beside the last round; then one traced LoRA run (`ADAPT_TRACE=1`: each step's time
    building graphs on the host and running them).
    Needs `models` and `pack.sh --baseline`."""
    base = baseline()
    data = bench_train_data()
    args = bench_train_1b(data)
    rounds = [("baseline", base, None), ("adapt", ADAPT, None), ("adapt-each", ADAPT, "each"),
              ("baseline", base, None), ("adapt", ADAPT, None), ("adapt-block", ADAPT, "block"),
              ("baseline", base, None), ("adapt", ADAPT, None)]
    out = {}
    for i, (side, binary, how) in enumerate(rounds):
        last = i == len(rounds) - 1
        extra = REFERENCE if last else []
        found = last_json(sh([binary, *args, *extra], timeout=900,
                             env={"ADAPT_GRAD_EVAL": how} if how else None))
        out[f"{i}-{side}"] = train_rows(found)
        results["train_versus"] = out
        save()
    out["trace"] = traced(ADAPT, bench_train_1b(data, "lora"), {},
                          ("batch_size", "steps_per_second"))
    return out


def alternate(name, sides, rounds):
    """`adapt bench train` (`bench_train_1b`) under each of `sides` (a label and its
    environment): one unrecorded run of each first (the card compiles each new kernel on its
    first use), then the sides alternating `rounds` times, mlx-lm's `lora` beside the last run
    (not with `ADAPT_GPU_REFERENCE=0`); then a traced run of each (`ADAPT_TRACE=1`). Saved
    under `results[name]` as it goes."""
    data = bench_train_data()
    args = bench_train_1b(data)
    for _, env in sides:
        sh([ADAPT, *args], timeout=900, env=env)
    order = list(sides) * rounds
    out = {}
    for i, (side, env) in enumerate(order):
        last = i == len(order) - 1
        extra = REFERENCE if last and WITH_REFERENCE else []
        out[f"{i}-{side}"] = train_rows(last_json(sh([ADAPT, *args, *extra], timeout=900,
                                                     env=env)))
        results[name] = out
        save()
    for side, env in sides:
        out[f"trace-{side}"] = traced(ADAPT, args, env,
                                      ("method", "batch_size", "steps_per_second"))
    return out


@stage("train_compiled")
def train_compiled():
    """The forward and backward pass compiled (the default since the sixth lease) against built
    anew each step (`ADAPT_COMPILE_STEP=0`), alternating three times (`alternate`). Needs
    `models`."""
    return alternate("train_compiled", [("built", {"ADAPT_COMPILE_STEP": "0"}),
                                        ("compiled", {"ADAPT_COMPILE_STEP": "1"})], 3)


@stage("decode_versus")
def decode_versus():
    """Decode before and after a change: `adapt-baseline` (`pack.sh --baseline`), `adapt` and
    mlx-lm on each shape of `ADAPT_GPU_SHAPES` that `models` made (512-token prompt, 128
    generated, a warm-up and the median of `RUNS`), `ADAPT_GPU_ROUNDS` (3) rounds, the two
    builds' order swapped every other round; without mlx-lm with `ADAPT_GPU_REFERENCE=0`."""
    base = baseline()
    out = {}
    shapes = [k for k in os.environ.get("ADAPT_GPU_SHAPES", "1b-bf16").split(",")
              if (model_dir(*k.split("-")) / "config.json").exists()]
    for round_ in range(int(os.environ.get("ADAPT_GPU_ROUNDS", "3"))):
        for key in shapes:
            path = model_dir(*key.split("-"))
            sides = [("baseline", [base, *bench_decode(path)]),
                     ("adapt", [ADAPT, *bench_decode(path)])]
            if round_ % 2:
                sides.reverse()
            if WITH_REFERENCE:
                sides.append(("mlx_lm", mlx_lm_decode(path)))
            for side, cmd in sides:
                found = last_json(sh(cmd))
                out.setdefault(key, []).append(
                    {"round": round_, "side": side, **decode_figures(found)})
                results["decode_versus"] = out
                save()
    return out


MLX_ENVS = ["default", "MLX_CUDA_GRAPH_CACHE_SIZE=1000", "MLX_MAX_OPS_PER_BUFFER=50",
            "MLX_MAX_OPS_PER_BUFFER=100", "MLX_MAX_OPS_PER_BUFFER=200", "MLX_USE_CUDA_GRAPHS=0"]


def mlx_env_of(label):
    """The environment a `MLX_ENVS` label names (`default`: none)."""
    return {} if label == "default" else dict([label.split("=", 1)])


@stage("mlx_env")
def mlx_env():
    """MLX's CUDA runtime settings (how many kernels go into one CUDA graph, how many graphs
    it keeps, graphs at all) on our side only: `adapt bench train` (`bench_train_1b`) and
    decode on the 1B bf16 shape under each of `MLX_ENVS`, two alternating rounds after one
    unrecorded run. Needs `models`."""
    data = bench_train_data()
    args = bench_train_1b(data)
    decode = bench_decode(model_dir("1b", "bf16"))
    sh([ADAPT, *args], timeout=900)
    out = {}
    for r in range(2):
        for label in MLX_ENVS:
            env = mlx_env_of(label)
            row = {"train": train_rows(last_json(sh([ADAPT, *args], timeout=900, env=env))),
                   "decode": last_json(sh([ADAPT, *decode], timeout=900, env=env))}
            out[f"{r}-{label}"] = row
            results["mlx_env"] = out
            save()
    return out


@stage("census")
def census():
    """Both sides' training step on the card, counted and timed: `adapt bench train` on the 1B
    shape (LoRA, QLoRA, batch 1 and 4) with mlx-lm's `lora` beside it and `ADAPT_TRACE=1`, so
    each side prints its second step's graph by primitive kind (ours the gradients' and the
    update's) and ours each step's host and device times. Needs `models`."""
    data = bench_train_data()
    return traced(ADAPT, [*bench_train_1b(data), *REFERENCE], {},
                  ("method", "batch_size", "steps_per_second", "peak_memory", "reference"))


@stage("mlx_env_versus")
def mlx_env_versus():
    """`adapt bench train` with mlx-lm's `lora` beside it under each setting named in
    `ADAPT_GPU_MLX_ENV` (labels of `MLX_ENVS`, comma-separated; the same variable reaches
    both sides). Needs `models`."""
    data = bench_train_data()
    args = bench_train_1b(data)
    out = {}
    for i, label in enumerate(os.environ.get("ADAPT_GPU_MLX_ENV", "default").split(",")):
        found = sh([ADAPT, *args, *REFERENCE], timeout=900,
                   env=mlx_env_of(label))
        out[f"{i}-{label}"] = train_rows(last_json(found))
        results["mlx_env_versus"] = out
        save()
    return out


@stage("compiled_memory")
def compiled_memory():
    """Peak memory of the compiled pass by setting: QLoRA after LoRA in one process three times,
    the built pass once, QLoRA alone once (a lease saw QLoRA's compiled peak grow by about the
    float base's size in some processes after LoRA, when the frozen weights were constants of
    the trace). Needs `models`."""
    data = bench_train_data()
    out = {}
    compiled, built = {"ADAPT_COMPILE_STEP": "1"}, {"ADAPT_COMPILE_STEP": "0"}
    for i, (methods, env) in enumerate([("lora,qlora", compiled)] * 3 + [("lora,qlora", built),
                                        ("qlora", compiled)]):
        found = sh([ADAPT, *bench_train_1b(data, methods)], timeout=900, env=env)
        side = "compiled" if env is compiled else "built"
        out[f"{i}-{methods}-{side}"] = train_rows(last_json(found))
        results["compiled_memory"] = out
        save()
    return out


STAGES = [doctor, bandwidth, models, fallback, decode, chat, train, precision, bench_train,
          trace, parity, greedy, grad_eval, chat_jit, versus, train_versus,
          train_compiled, compiled_memory, mlx_env, mlx_env_versus, census, decode_versus]

if __name__ == "__main__":
    wanted = sys.argv[1:] or [s.stage for s in STAGES]
    for s in STAGES:
        if s.stage in wanted:
            s()
    log("suite: done")
