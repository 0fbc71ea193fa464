#!/usr/bin/env bash
# Step time of `adapt train` with the next batches built ahead on a helper thread and without
# (`--no-prefetch`), on the bundled SmolLM2 and generated chat data, same settings, one after
# the other on this machine. Each side: median seconds per step over the reports after the
# first two (warm-up), for each of RUNS runs; the table gives the median of those medians.
#   scripts/bench-prefetch.sh [ITERS] [BATCH] [MAX_SEQ_LENGTH] [RUNS]
# ADAPT_BIN=<path to adapt> skips the release build and times that binary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ITERS=${1:-8}
BATCH=${2:-4}
SEQ=${3:-256}
RUNS=${4:-3}
"$ROOT/scripts/setup.sh"
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
adapt=${ADAPT_BIN:-}
if [ -z "$adapt" ]; then
    cargo build --release --quiet -p adapt-cli
    adapt=$TARGET/release/adapt
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ADAPT_DATA_DIR=$work/data ADAPT_CACHE_DIR=$work/cache
python3 - "$work" <<'PY'
# Chat examples of mixed length: a question and an answer of 2 to 12 sentences.
import json, random, sys
rng = random.Random(3)
words = "river mountain engine garden letter window market silver winter harbor".split()
with open(f"{sys.argv[1]}/train.jsonl", "w") as f:
    for _ in range(400):
        q = "Tell me about the " + " and the ".join(rng.sample(words, 2)) + "."
        a = " ".join(" ".join(rng.choice(words) for _ in range(10)) + "."
                     for _ in range(rng.randint(2, 12)))
        f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                         {"role": "assistant", "content": a}]}) + "\n")
PY
results=""
for run in $(seq "$RUNS"); do
    for side in ahead inline; do
        flag=""
        if [ "$side" = inline ]; then flag=--no-prefetch; fi
        echo "bench-prefetch: run $run, $side …" >&2
        out=$("$adapt" train --model "$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf" \
            --data "$work/train.jsonl" --iters "$ITERS" --batch-size "$BATCH" \
            --max-seq-length "$SEQ" --rank 8 --num-layers 8 --learning-rate 1e-5 \
            --steps-per-report 1 --steps-per-eval 1000000 --save-every 1000000 --json $flag)
        results+=$(python3 - "$side" "$out" <<'PY'
import json, statistics, sys
side, out = sys.argv[1], sys.argv[2]
reports = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
steps = [1 / r["iterations_per_second"] for r in reports if r.get("type") == "report"][2:]
print(json.dumps({"side": side, "step": statistics.median(steps)}))
PY
)$'\n'
    done
done
python3 - "$results" "$ITERS" "$BATCH" "$SEQ" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"machine: {cpu}; SmolLM2-135M, {sys.argv[2]} steps, batch {sys.argv[3]}, max length {sys.argv[4]}")
for side in ("ahead", "inline"):
    runs = [r["step"] for r in rows if r["side"] == side]
    print(f"{side:7} median step {statistics.median(runs):.3f} s  (runs: {', '.join(f'{x:.3f}' for x in runs)})")
PY
