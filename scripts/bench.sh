#!/usr/bin/env bash
# Speed of `adapt` beside the reference (mlx-lm) on the same model, machine and run.
#   scripts/bench.sh [MODEL.gguf or MODEL_DIR] [PROMPT_TOKENS] [GENERATE_TOKENS] [RUNS]
# Both sides hold the weights the same way (CPU: dense f32; GPU: quantized as stored, f16)
# and process the same pseudo-random prompt; each reports the median of RUNS after a warm-up.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=${1:-$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf}
PROMPT=${2:-512}
GENERATE=${3:-128}
RUNS=${4:-3}
MLX_LM_VERSION=0.32.2
"$ROOT/scripts/setup.sh"
cd "$ROOT"
cargo build --release --quiet -p adapt-cli

# The reference in its own environment, on the same MLX release and BLAS as ours.
python=$("$ROOT/scripts/reference/env.sh")

echo "bench: adapt …" >&2
ours=$(target/release/adapt bench --model "$MODEL" --prompt-tokens "$PROMPT" \
    --generate-tokens "$GENERATE" --runs "$RUNS" --json)
echo "bench: mlx-lm $MLX_LM_VERSION …" >&2
theirs=$("$python" scripts/bench_reference.py "$MODEL" "$PROMPT" "$GENERATE" "$RUNS")

python3 - "$ours" "$theirs" "$PROMPT" "$GENERATE" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
prompt, gen = sys.argv[3], sys.argv[4]
print(f"machine: {ours['cpu']} ({ours['backend']}); prompt {prompt} tokens, {gen} generated")
print(f"{'':24}{'adapt':>12}{'mlx-lm':>12}{'ratio':>9}")
rows = [
    ("prefill tok/s", "prefill_tokens_per_second", 1.0, True),
    ("decode tok/s", "decode_tokens_per_second", 1.0, True),
    ("time to first token s", "time_to_first_token", 1.0, False),
    ("peak memory MB", "peak_memory", 1e-6, False),
]
for label, key, scale, higher_better in rows:
    a, b = ours[key] * scale, theirs[key] * scale
    print(f"{label:24}{a:12.2f}{b:12.2f}{a / b:8.2f}x")
print("(ratio = adapt / mlx-lm; above 1 is better for speeds, below 1 for time and memory)")
PY
