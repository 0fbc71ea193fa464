#!/usr/bin/env bash
# Training speed of one process against a group of N on this machine (`adapt launch -n N`,
# MLX's ring backend over loopback), on the same model, data, global batch and steps.
#   scripts/bench-distributed.sh [MODEL] [N] [ITERS] [ROUNDS]
# Both sides train the same global batches from the same seed (so the same work, warm-up
# included); each reports trained tokens / training seconds (rank 0's figure for the group,
# which counts every rank's tokens). Rounds alternate the sides; the table shows the median.
# The losses of the first round are printed side by side.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${1:-$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf}
N=${2:-2}
ITERS=${3:-4}
ROUNDS=${4:-3}
# Needs the MLX runtime that scripts/setup.sh prepares.
cd "$ROOT"
cargo build --release --quiet -p adapt-cli
ADAPT=${CARGO_TARGET_DIR:-$ROOT/target}/release/adapt

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/train.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(48):
        pad = "very " * (i % 7)
        f.write(json.dumps({"messages": [
            {"role": "user", "content": f"Question {i}: what is the {pad}secret code?"},
            {"role": "assistant", "content": f"The code is {100 + 7 * i}."}]}) + "\n")
PY
args=(train --model "$MODEL" --data "$work/train.jsonl" --valid-ratio 0 --iters "$ITERS"
      --batch-size 4 --num-layers 4 --rank 8 --dropout 0 --learning-rate 1e-4
      --max-seq-length 64 --save-every 1000 --steps-per-report 1 --json)
export ADAPT_CACHE_DIR=$work/cache

one="" group=""
for round in $(seq "$ROUNDS"); do
    echo "bench: round $round/$ROUNDS: 1 process …" >&2
    one+=$(ADAPT_DATA_DIR=$work/one-$round "$ADAPT" "${args[@]}" | grep '^{"run_id"')$'\n'
    echo "bench: round $round/$ROUNDS: $N processes …" >&2
    group+=$(ADAPT_DATA_DIR=$work/group-$round "$ADAPT" launch -n "$N" -- "${args[@]}" \
        | sed -n 's/^\[0\] \({"run_id".*\)/\1/p')$'\n'
done

python3 - "$one" "$group" "$N" "$ROUNDS" <<'PY'
import json, statistics, sys
one, group, n, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def runs(text):
    return [json.loads(l)["outcome"] for l in text.splitlines() if l.strip()]
def speed(o):
    return o["trained_tokens"] / o["seconds"]
a, b = runs(one), runs(group)
print(f"Training tokens/s, median of {rounds} rounds (same global batches, same steps):")
print(f"| processes | tokens/s | seconds | steps |")
print(f"|---|---|---|---|")
for name, rs in (("1", a), (str(n), b)):
    print(f"| {name} | {statistics.median(speed(o) for o in rs):.1f} | "
          f"{statistics.median(o['seconds'] for o in rs):.1f} | {rs[0]['steps']} |")
print()
print("Losses of round 1, step by step:")
print(f"| step | 1 process | {n} processes | difference |")
print("|---|---|---|---|")
for i, (x, y) in enumerate(zip(a[0]["losses"], b[0]["losses"])):
    print(f"| {i + 1} | {x:.6f} | {y:.6f} | {abs(x - y):.1e} |")
PY
