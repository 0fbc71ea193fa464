#!/usr/bin/env bash
# Speed of `adapt` beside the reference (mlx-lm) on the same model, machine and run.
#   scripts/bench.sh [MODEL.gguf or MODEL_DIR] [PROMPT_TOKENS] [GENERATE_TOKENS] [RUNS] [ROUNDS]
# Both sides hold the weights the same way (CPU: dense f32; GPU: quantized as stored, f16)
# and process the same pseudo-random prompt; each reports the median of RUNS after a warm-up,
# and the table shows the median over ROUNDS rounds that alternate the two sides.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${1:-$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf}
PROMPT=${2:-512}
GENERATE=${3:-128}
RUNS=${4:-3}
[ "$RUNS" -ge 3 ] || { echo "bench: RUNS must be at least 3 (a median of fewer is not a median)" >&2; exit 1; }
ROUNDS=${5:-3}
MLX_LM_VERSION=0.32.2
"$ROOT/scripts/setup.sh"
cd "$ROOT"
cargo build --release --quiet -p adapt-cli

# The reference in its own environment, on the same MLX release and BLAS as ours.
python=$("$ROOT/scripts/reference/env.sh")

# Rounds alternate the two sides so that a slower or faster spell of the machine hits both.
ours="" theirs=""
for round in $(seq "$ROUNDS"); do
    echo "bench: round $round/$ROUNDS: adapt …" >&2
    ours+=$(target/release/adapt bench --model "$MODEL" --prompt-tokens "$PROMPT" \
        --generate-tokens "$GENERATE" --runs "$RUNS" --json | tr -d '\n')$'\n'
    echo "bench: round $round/$ROUNDS: mlx-lm $MLX_LM_VERSION …" >&2
    theirs+=$("$python" scripts/bench_reference.py "$MODEL" "$PROMPT" "$GENERATE" "$RUNS")$'\n'
done

python3 - "$ours" "$theirs" "$PROMPT" "$GENERATE" "$ROUNDS" <<'PY'
import json, statistics, sys
def median_of(lines):
    rounds = [json.loads(l) for l in lines.splitlines() if l.strip()]
    keys = ["prefill_tokens_per_second", "decode_tokens_per_second", "time_to_first_token"]
    out = dict(rounds[0])
    for k in keys:
        out[k] = statistics.median(r[k] for r in rounds)
    out["peak_memory"] = max(r["peak_memory"] for r in rounds)
    return out
ours, theirs = median_of(sys.argv[1]), median_of(sys.argv[2])
prompt, gen, rounds = sys.argv[3], sys.argv[4], sys.argv[5]
print(f"machine: {ours['cpu']} ({ours['backend']}); prompt {prompt} tokens, {gen} generated; "
      f"median of {rounds} alternating rounds")
print(f"{'':24}{'adapt':>12}{'mlx-lm':>12}{'ratio':>9}")
# The headline prompt figure is prompt tokens over the time to the first token on both sides
# (prefill plus the first decode step: all the reference can time). Adapt's prefill alone has
# no counterpart on mlx-lm's side, so it is shown apart, not compared.
for side in (ours, theirs):
    side["prompt_per_ttft"] = int(prompt) / side["time_to_first_token"]
rows = [
    ("prompt tok/s (TTFT)", "prompt_per_ttft", 1.0, True),
    ("decode tok/s", "decode_tokens_per_second", 1.0, True),
    ("time to first token s", "time_to_first_token", 1.0, False),
    ("peak memory MB", "peak_memory", 1e-6, False),
]
for label, key, scale, higher_better in rows:
    a, b = ours[key] * scale, theirs[key] * scale
    print(f"{label:24}{a:12.2f}{b:12.2f}{a / b:8.2f}x")
print("(ratio = adapt / mlx-lm; above 1 is better for speeds, below 1 for time and memory;")
print(" both sides: median of RUNS runs after a warm-up, same prompt, same counted span)")
print(f"adapt's prefill alone, without its first decode step: "
      f"{ours['prefill_tokens_per_second']:.2f} tok/s (no mlx-lm counterpart)")
PY
