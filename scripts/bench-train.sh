#!/usr/bin/env bash
# Training speed and memory of `adapt train` beside the reference (`mlx_lm.lora`, same MLX) on
# the same model folder, data, settings and machine, in one run.
#   scripts/bench-train.sh [ITERS] [BATCH] [MAX_SEQ_LENGTH] [RANK] [LAYERS] [Q4_ITERS]
# Two bases from the bundled SmolLM2 GGUF: its weights dense in float32 (LoRA, ITERS steps)
# and its 4-bit folder (QLoRA, Q4_ITERS steps: MLX's CPU quantized kernels make the
# reference slow there). Each side trains the same generated chat data (loss on the assistant
# turns) without evaluation; speed is the median trained-tokens/s of its reports (every 5
# steps) after the first (at least 3 reports: ITERS and Q4_ITERS of 20 or more), memory its
# peak over the same span on both sides: from the start of training (after the model is
# loaded) to its end. Every example is a multiple of 32 tokens long, so both padding rules
# give batches of the same width, and each side's trained tokens are shown to agree.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ITERS=${1:-60}
BATCH=${2:-4}
SEQ=${3:-512}
RANK=${4:-8}
LAYERS=${5:-16}
Q4_ITERS=${6:-20}
MLX_LM_VERSION=0.32.2
"$ROOT/scripts/setup.sh"
cd "$ROOT"
cargo build --release --quiet -p adapt-cli
python=$("$ROOT/scripts/reference/env.sh")
adapt=$ROOT/target/release/adapt

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ADAPT_DATA_DIR=$work/data ADAPT_CACHE_DIR=$work/cache

echo "bench-train: preparing the model folders and the data …" >&2
"$adapt" convert "$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf" "$work/q4" >/dev/null
"$python" - "$work/q4" "$work/f32" <<'PY'
# The same weights dense in float32: both tools then run the same kernels on CPU.
import json, shutil, sys
from pathlib import Path
import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm.utils import load_model, save_model
src, out = Path(sys.argv[1]), Path(sys.argv[2])
model, config = load_model(src)
weights = {}
for name, mod in model.named_modules():
    if hasattr(mod, "scales") and hasattr(mod, "group_size"):
        w = mx.dequantize(mod.weight, mod.scales, mod.biases, mod.group_size, mod.bits)
        weights[name + ".weight"] = w.astype(mx.float32)
for name, value in tree_flatten(model.parameters()):
    if name.endswith((".scales", ".biases")) and name.rsplit(".", 1)[0] + ".weight" in weights:
        continue
    weights.setdefault(name, value.astype(mx.float32))
out.mkdir()
mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
config.pop("quantization", None)
config.pop("quantization_config", None)
config["torch_dtype"] = "float32"
(out / "config.json").write_text(json.dumps(config, indent=2))
for f in src.iterdir():
    if f.name not in ("config.json",) and not f.name.endswith(".safetensors") and f.name != "model.safetensors.index.json":
        shutil.copy(f, out / f.name)
PY
mkdir -p "$work/chat"
"$python" - "$work/chat" "$work/q4" <<'PY'
# Generated chat examples of steady length: a question and a long answer, each example
# exactly a multiple of 32 tokens long as the chat template renders it, so that mlx-lm's
# padding (one plus a multiple of 32) and Adapt's (a multiple of 8) give batches of the same
# width: both sides then compute on the same tokens and train the same ones.
import json, random, sys
from mlx_lm.tokenizer_utils import load as load_tokenizer
from pathlib import Path
tokenizer = load_tokenizer(Path(sys.argv[2]))
rng = random.Random(7)
words = ("river mountain engine garden letter window market silver winter harbor violin "
         "lantern orchard meadow candle bridge forest castle planet pepper copper ribbon").split()
def sentence(n):
    return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."
def length(messages):
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
for split, n in (("train", 200), ("valid", 8)):
    with open(f"{sys.argv[1]}/{split}.jsonl", "w") as f:
        for _ in range(n):
            q = "Tell me about the " + " and the ".join(rng.sample(words, 3)) + "."
            a = " ".join(sentence(12) for _ in range(8))
            messages = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            for _ in range(64):
                if length(messages) % 32 == 0:
                    break
                messages[1]["content"] += " and"
            else:
                sys.exit("bench-train: could not make an example a multiple of 32 tokens")
            f.write(json.dumps({"messages": messages}) + "\n")
PY

results=""
for base in f32 q4; do
    model=$work/$base
    iters=$ITERS
    if [ "$base" = q4 ]; then iters=$Q4_ITERS; fi
    echo "bench-train: $base: adapt …" >&2
    ours=$("$adapt" train --model "$model" --data "$work/chat/train.jsonl" \
        --valid "$work/chat/valid.jsonl" --iters "$iters" --batch-size "$BATCH" \
        --max-seq-length "$SEQ" --rank "$RANK" --num-layers "$LAYERS" --learning-rate 1e-5 \
        --steps-per-report 5 --steps-per-eval 1000000 --val-batches 1 --save-every 1000000 --json)
    echo "bench-train: $base: mlx-lm $MLX_LM_VERSION …" >&2
    cat > "$work/lora.yaml" <<YAML
lora_parameters: {rank: $RANK, scale: 20.0, dropout: 0.0}
YAML
    theirs=$("$python" scripts/reference/lora_bench.py --model "$model" --train --data "$work/chat" \
        --iters "$iters" --batch-size "$BATCH" --max-seq-length "$SEQ" --num-layers "$LAYERS" \
        --learning-rate 1e-5 --steps-per-report 5 --steps-per-eval 1000000 --val-batches 1 \
        --save-every 1000000 --mask-prompt --adapter-path "$work/mlx-adapter-$base" \
        -c "$work/lora.yaml" 2>"$work/mlx-lm.log") || { tail -30 "$work/mlx-lm.log" >&2; exit 1; }
    results+=$(python3 - "$base" "$ours" "$theirs" <<'PY'
import json, re, statistics, sys
base, ours, theirs = sys.argv[1], sys.argv[2], sys.argv[3]
reports = [json.loads(l) for l in ours.splitlines() if l.startswith("{")]
ours_reports = [r for r in reports if r.get("type") == "report"]
ours_tps = [r["tokens_per_second"] for r in ours_reports][1:]
ours_peak = max(r["peak_memory"] for r in ours_reports)
ours_tokens = ours_reports[-1]["trained_tokens"]
iters = [json.loads(l[len("REPORT "):]) for l in theirs.splitlines() if l.startswith("REPORT ")]
if not iters:
    sys.exit("mlx-lm printed no training reports:\n" + theirs[-2000:])
theirs_tps = [r["tokens_per_second"] for r in iters][1:]
theirs_peak = max(r["peak_memory"] for r in iters) * 1e9
theirs_tokens = int(iters[-1]["trained_tokens"])
if min(len(ours_tps), len(theirs_tps)) < 3:
    sys.exit(f"bench-train: {base}: fewer than 3 reports after the first; give more steps")
print(json.dumps({"base": base, "ours_tps": statistics.median(ours_tps),
                  "theirs_tps": statistics.median(theirs_tps), "samples": len(ours_tps),
                  "ours_peak": ours_peak, "theirs_peak": theirs_peak,
                  "ours_tokens": ours_tokens, "theirs_tokens": theirs_tokens}))
PY
)$'\n'
done

python3 - "$results" "$ITERS" "$BATCH" "$SEQ" "$RANK" "$LAYERS" <<'PY'
import json, platform, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
iters, batch, seq, rank, layers = sys.argv[2:7]
cpu = "unknown"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    cpu = platform.processor() or platform.machine()
print(f"machine: {cpu}; {iters} steps (4-bit: fewer), batch {batch}, max length {seq}, rank {rank}, "
      f"{layers} layers; trained tokens/s = median of reports after the first")
print(f"{'base':8}{'adapt tok/s':>13}{'mlx-lm tok/s':>14}{'ratio':>8}{'adapt MB':>11}{'mlx-lm MB':>11}{'ratio':>8}"
      f"{'samples':>9}{'trained tokens adapt / mlx-lm':>32}")
for r in rows:
    print(f"{r['base']:8}{r['ours_tps']:13.1f}{r['theirs_tps']:14.1f}{r['ours_tps']/r['theirs_tps']:7.2f}x"
          f"{r['ours_peak']/1e6:11.0f}{r['theirs_peak']/1e6:11.0f}{r['ours_peak']/r['theirs_peak']:7.2f}x"
          f"{r['samples']:9}{r['ours_tokens']:>20} / {r['theirs_tokens']}")
print("(tok/s ratio = adapt / mlx-lm, above 1 is faster; memory ratio below 1 is smaller)")
PY
