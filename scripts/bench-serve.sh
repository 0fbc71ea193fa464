#!/usr/bin/env bash
# `adapt serve` beside `mlx_lm.server` on the same model folder (converted once from the GGUF
# file), weights held the same way (CPU: dense f32), the same machine and the same clients:
# CLIENTS concurrent conversations of TURNS turns each, growing by one exchange a turn and sent
# whole every turn (streamed, greedy, MAX_TOKENS tokens at most). Each side is started fresh
# (an empty data folder for adapt: no prompt cache from an earlier run) ROUNDS times,
# alternating; the table shows the medians: requests/s, time to first token p50 / p95, and the
# prompt tokens each server reports as reused from its cache.
#   scripts/bench-serve.sh [MODEL.gguf] [CLIENTS] [TURNS] [MAX_TOKENS] [ROUNDS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${1:-$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf}
CLIENTS=${2:-4}
TURNS=${3:-4}
MAX_TOKENS=${4:-16}
ROUNDS=${5:-3}
CACHE=${ADAPT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/adapt}
"$ROOT/scripts/setup.sh"
cd "$ROOT"
cargo build --release --quiet -p adapt-cli
adapt="${CARGO_TARGET_DIR:-$ROOT/target}/release/adapt"
python=$("$ROOT/scripts/reference/env.sh")
folder="$CACHE/bench-serve/$(basename "${MODEL%.*}")-mlx"
if [ ! -d "$folder" ]; then
    mkdir -p "$(dirname "$folder")"
    "$adapt" convert "$MODEL" "$folder" >&2
fi
name=$(basename "$folder")

# Waits until $1 answers, or fails after two minutes.
wait_up() {
    for _ in $(seq 240); do
        curl -sf "$1" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "bench-serve: $1 never answered" >&2
    return 1
}

# Runs the clients against the server at port $1 for model name $2.
clients() {
    python3 scripts/bench_serve.py "http://127.0.0.1:$1/v1" "$2" "$CLIENTS" "$TURNS" "$MAX_TOKENS"
}

ours="" theirs=""
for round in $(seq "$ROUNDS"); do
    echo "bench-serve: round $round/$ROUNDS: adapt serve …" >&2
    data=$(mktemp -d)
    ADAPT_DATA_DIR="$data" "$adapt" serve --model "$folder" --port 18181 --quiet 2>/dev/null >/dev/null &
    pid=$!
    wait_up http://127.0.0.1:18181/health
    ours+=$(clients 18181 "$name")$'\n'
    kill -INT "$pid"; wait "$pid" || true
    rm -rf "$data"
    echo "bench-serve: round $round/$ROUNDS: mlx_lm.server …" >&2
    "$python" scripts/reference/serve_reference.py "$folder" 18182 2>/dev/null &
    pid=$!
    wait_up http://127.0.0.1:18182/v1/models
    theirs+=$(clients 18182 "$folder")$'\n'
    kill "$pid"; wait "$pid" || true
done

python3 - "$ours" "$theirs" "$CLIENTS" "$TURNS" "$MAX_TOKENS" "$ROUNDS" <<'PY'
import json, platform, os, statistics, sys
def medians(text):
    rounds = [json.loads(l) for l in text.splitlines() if l.strip()]
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
ours, theirs = medians(sys.argv[1]), medians(sys.argv[2])
clients, turns, max_tokens, rounds = sys.argv[3:7]
print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {clients} clients x {turns} turns, "
      f"at most {max_tokens} tokens a reply; median of {rounds} alternating rounds")
print(f"{'':28}{'adapt serve':>14}{'mlx_lm.server':>15}")
rows = [("requests/s", "requests_per_second", "{:.3f}"), ("TTFT p50 s", "ttft_p50", "{:.3f}"),
        ("TTFT p95 s", "ttft_p95", "{:.3f}"), ("prompt tokens", "prompt_tokens", "{:.0f}"),
        ("  reused from cache", "cached_tokens", "{:.0f}"), ("generated tokens", "completion_tokens", "{:.0f}")]
for label, key, fmt in rows:
    print(f"{label:28}{fmt.format(ours[key]):>14}{fmt.format(theirs[key]):>15}")
PY
