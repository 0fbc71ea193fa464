#!/usr/bin/env bash
# How long a GGUF file takes to load and how much memory it takes, beside its size.
#   scripts/bench-gguf-load.sh [MODEL.gguf] [RUNS] [quantized|dense] [f16|f32|bf16]
# Without a model, uses (and makes once, under the cache) a Llama 3.2 1B-shaped Q4_K_M with
# random weights: an F16 file written by the `gguf` package, quantized by llama.cpp's own
# quantizer (scripts/reference/llama_cpp_ref.py). Each run is a fresh process that loads the
# file once (scripts/reference/env.sh's llama.cpp, the example `gguf_load`); the table gives
# the median over RUNS of the load time, MLX's peak memory and the process's peak resident
# memory. `quantized` (default) keeps weights as MLX groups, as the GPU backends do; `dense`
# decodes them, as the CPU backend does.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ADAPT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/adapt}
MODEL=${1:-}
RUNS=${2:-3}
MODE=${3:-quantized}
DTYPE=${4:-f16}
"$ROOT/scripts/setup.sh"
cd "$ROOT"
if [ -z "$MODEL" ]; then
    MODEL="$CACHE/bench/random-llama-1b/Q4_K_M.gguf"
    if [ ! -f "$MODEL" ]; then
        echo "bench-gguf-load: making $MODEL (a few minutes)" >&2
        python=$("$ROOT/scripts/reference/env.sh")
        "$python" scripts/reference/llama_cpp_ref.py model "$(dirname "$MODEL")" 1 1b Q4_K_M >&2
        rm -f "$(dirname "$MODEL")/F16.gguf"
    fi
fi
cargo build --release --quiet -p adapt-engine --example gguf_load
bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/gguf_load
# Peak resident memory from the system's `time` (GNU: -v, in KiB; BSD / macOS: -l, in bytes).
if /usr/bin/time -v true >/dev/null 2>&1; then TIME=(-v); else TIME=(-l); fi
rows=""
for run in $(seq "$RUNS"); do
    echo "bench-gguf-load: run $run/$RUNS" >&2
    out=$( { /usr/bin/time "${TIME[@]}" "$bin" "$MODEL" "$MODE" "$DTYPE" 2>"$CACHE/bench/time.txt"; } )
    rss=$(awk '/Maximum resident set size/ {print $NF * 1024} /maximum resident set size/ {print $1}' "$CACHE/bench/time.txt")
    rows+="${out%\}}, \"peak_rss_bytes\": $rss}"$'\n'
done
printf '%s' "$rows" | python3 -c '
import json, statistics, sys
runs = [json.loads(line) for line in sys.stdin if line.strip()]
first = runs[0]
size = first["file_bytes"]
print("model: %s (%.2f B parameters, loaded as %s)" % (sys.argv[1], first["parameters"] / 1e9, first["loaded_as"]))
print("file size          %7.2f GiB" % (size / 2**30))
print("load time          %7.2f s    (median of %d)" % (statistics.median(r["seconds"] for r in runs), len(runs)))
for label, key in [("MLX peak memory", "mlx_peak_bytes"), ("MLX memory after", "mlx_active_bytes"), ("peak resident", "peak_rss_bytes")]:
    m = statistics.median(r[key] for r in runs)
    print("%-18s %7.2f GiB  (%.2f x file)" % (label, m / 2**30, m / size))
' "$MODEL"
