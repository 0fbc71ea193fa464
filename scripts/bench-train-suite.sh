#!/usr/bin/env bash
# `adapt bench train` on the bundled SmolLM2 with mlx-lm's `lora` beside it: LoRA and DoRA on
# the float base, QLoRA on the 4-bit one, at batch sizes 1 and 4, on generated chat data in
# mlx-lm's layout (64 training rows, 8 validation rows: a batch of 4 divides them, so both
# sides measure the validation loss on the same rows).
#   scripts/bench-train-suite.sh [STEPS] [WARMUP] [BATCHES] [MAX_SEQ_LENGTH] [LAYERS] [-- more flags]
# ADAPT_BIN=<path to adapt> skips the release build and times that binary; the table goes to
# stdout, and the JSON report also to the file $BENCH_JSON when it is set.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STEPS=${1:-3}
WARMUP=${2:-1}
BATCHES=${3:-1,4}
SEQ=${4:-128}
LAYERS=${5:-8}
shift $(( $# < 5 ? $# : 5 ))
[ "${1:-}" = "--" ] && shift
"$ROOT/scripts/setup.sh"
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
adapt=${ADAPT_BIN:-}
if [ -z "$adapt" ]; then
    cargo build --release --quiet -p adapt-cli
    adapt=$TARGET/release/adapt
fi
python=$("$ROOT/scripts/reference/env.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ADAPT_DATA_DIR=$work/data ADAPT_CACHE_DIR=$work/cache
mkdir -p "$work/chat"
python3 - "$work/chat" <<'PY'
# Chat examples: a question about a made-up place and a one- or two-sentence answer.
import json, random, sys
rng = random.Random(5)
places = "harbor orchard lantern castle meadow bridge forest market".split()
colors = "blue green amber silver crimson violet".split()
for split, n in (("train", 64), ("valid", 8)):
    with open(f"{sys.argv[1]}/{split}.jsonl", "w") as f:
        for _ in range(n):
            place, color = rng.choice(places), rng.choice(colors)
            code = "-".join(str(rng.randrange(10)) for _ in range(3))
            answer = f"The {color} {place}'s code is {code}."
            if rng.random() < 0.5:
                answer += f" Ask at the {rng.choice(places)} if you forget it."
            messages = [{"role": "user", "content": f"What is the code of the {color} {place}?"},
                        {"role": "assistant", "content": answer}]
            f.write(json.dumps({"messages": messages}) + "\n")
PY
json=()
if [ -n "${BENCH_JSON:-}" ]; then json=(--json-file "$BENCH_JSON"); fi
"$adapt" bench train --data "$work/chat" --steps "$STEPS" --warmup "$WARMUP" \
    --batch-sizes "$BATCHES" --max-seq-length "$SEQ" --num-layers "$LAYERS" \
    --reference --reference-python "$python" ${json[@]+"${json[@]}"} "$@"
