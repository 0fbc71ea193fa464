#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with cargo fuzz (libFuzzer), each target for a given
# time, seeded from the test corpora and fixtures; prints a table of executions, coverage and
# crashes. Not part of CI: the crashes it finds become regression tests beside the code.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Default: 600 s (10 minutes) for each of every target. Targets (fuzz/fuzz_targets/):
#   gguf           GGUF header, metadata, tensor table, tensor decoding, tokenizer + template
#   model_folder   a model folder's config.json and safetensors header (the model library)
#   jsonl_import   JSONL import, validation and rendering with the real model's template; isolation sets
#   csv_import     CSV / TSV import with a hostile column mapping
#   chat_template  chat-template rendering with hostile templates and messages
#   hub_json       the Hub's repository info and safetensors index
#   engine_files   config.json → model shape and prompt-cache files, through MLX (adapt-engine)
# Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz`). Environment:
#   FUZZ_SANITIZER  none (default: the parsers are safe Rust) or address
#   FUZZ_JOBS       parallel libFuzzer workers per target (default 1)
#   CARGO_TARGET_DIR  where to build (default fuzz/target)
#   FUZZ_RESULTS    the table's file (default fuzz/results.tsv)
# A crash leaves its input in fuzz/artifacts/TARGET/; replay it with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_EACH=${1:-600}
shift || true
ALL=(gguf model_folder jsonl_import csv_import chat_template hub_json engine_files)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
SANITIZER=${FUZZ_SANITIZER:-none}
JOBS=${FUZZ_JOBS:-1}
FUZZ=$ROOT/fuzz

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: needs nightly Rust and cargo-fuzz: rustup toolchain install nightly && cargo install cargo-fuzz" >&2
    exit 1
fi

# The seed corpus of each target, rebuilt from the repository's fixtures on every run (the
# corpus folder also keeps what earlier runs found).
seed() {
    local target=$1 dir=$FUZZ/corpus/$1
    mkdir -p "$dir"
    python3 - "$ROOT" "$target" "$dir" <<'PY'
import json, pathlib, shutil, struct, sys
root, target, out = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
parity = sorted((root / "tests/fixtures/parity").iterdir())
parity = [p for p in parity if p.is_dir()]
def put(name, data):
    (out / f"seed-{name}").write_bytes(data)
def head_of_safetensors(path, extra=256):
    # The header and the start of the data: what the library reads, and short for libFuzzer.
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return data[: 8 + n + extra]
def prompt_cache():
    # A two-layer KVCache prompt cache in mlx-lm's layout, tokens in our metadata key.
    tensors, blob = {}, b""
    def add(name, dtype, shape, raw):
        nonlocal blob
        tensors[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    meta = {"0.adapt.tokens": "1,2", "2.0": ""}
    for i in range(2):
        add(f"{i}.0", "F32", [1, 1, 2, 2], struct.pack("<4f", 0.5, 1.0, -1.0, 2.0))
        add(f"{i}.1", "F32", [1, 1, 2, 2], struct.pack("<4f", 0.25, 0.0, 3.0, 1.5))
        add(f"{i}.2", "I32", [], struct.pack("<i", 2))
        meta[f"1.{i}"] = "KVCache"
        meta[f"2.{i + 1}.0"] = f"{i}.2"
        meta[f"2.{i + 1}.1"] = "scalar"
    tensors["__metadata__"] = meta
    header = json.dumps(tensors).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + blob
if target == "gguf":
    for p in sorted((root / "crates/adapt-text/tests/data").glob("*.gguf")):
        shutil.copy(p, out / f"seed-{p.name}")
    for p in parity:
        if (p / "model.gguf").is_file():
            put(f"{p.name}.gguf", (p / "model.gguf").read_bytes())
elif target == "model_folder":
    for p in parity:
        shards = sorted(p.glob("*.safetensors"))
        if (p / "config.json").is_file() and shards:
            put(p.name, (p / "config.json").read_bytes() + b"\0" + head_of_safetensors(shards[0]))
elif target == "jsonl_import":
    files = list((root / "crates/adapt-data/tests/corpus").glob("*.jsonl")) + [root / "examples/blue-lantern.jsonl", root / "examples/topics/conversations.jsonl"]
    for p in files:
        put(p.name, p.read_bytes()[:16384])
elif target == "csv_import":
    for p in (root / "crates/adapt-data/tests/corpus").glob("*.[ct]sv"):
        put(p.name, b"\0" + p.read_bytes())
    put("mapped.csv", b"Q: {{ name }} is {{ age }}?\n{{ row['class'] }}\n\0"
        b"\"\",name,age,class\n0,Ann,30,first\n1,\"Bob, Jr\",4,\"third\"\"\"\n")
    put("column.csv", b"\n\nclass\n\0name,age,class\nAnn,30,first\n")
elif target == "engine_files":
    for p in parity:
        if (p / "config.json").is_file():
            put(p.name, (p / "config.json").read_bytes() + b"\0" + prompt_cache())
seeds = root / "fuzz/seeds" / target
if seeds.is_dir():
    for p in seeds.iterdir():
        shutil.copy(p, out / f"seed-{p.name}")
PY
}

features() { [ "$1" = engine_files ] && echo "--features engine" || true; }
# Workers only when asked for: libFuzzer's jobs mode writes fuzz-N.log files into the folder.
parallel() { [ "$JOBS" -gt 1 ] && echo "-jobs=$JOBS -workers=$JOBS" || true; }

# cargo fuzz sets RUSTFLAGS, which drops the rpath that finds MLX's libmlx.so: the target that
# links MLX finds it through the runtime folder scripts/setup.sh recorded.
mlx_runtime=$(sed -nE 's/^runtime = "(.*)"/\1/p' "$ROOT/.cargo/mlx-linux.toml" 2>/dev/null || true)
if [ -n "$mlx_runtime" ]; then export LD_LIBRARY_PATH=$mlx_runtime${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi

results=${FUZZ_RESULTS:-$FUZZ/results.tsv}
printf 'target\tseconds\texecutions\tcoverage\tfeatures\tcorpus\tcrashes\n' >"$results"
cd "$FUZZ"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${TARGETS[@]}"; do
    seed "$target"
    # shellcheck disable=SC2046
    cargo +nightly fuzz build -O --sanitizer "$SANITIZER" $(features "$target") "$target"
    log=$FUZZ/artifacts/$target.log
    mkdir -p "$FUZZ/artifacts/$target"
    echo "fuzz: $target for ${SECONDS_EACH}s …" >&2
    status=0
    # shellcheck disable=SC2046
    ADAPT_FUZZ_TMP=$scratch cargo +nightly fuzz run -O --sanitizer "$SANITIZER" $(features "$target") \
        "$target" "corpus/$target" -- -max_total_time="$SECONDS_EACH" -timeout=20 \
        -rss_limit_mb=4096 -max_len=262144 -print_final_stats=1 $(parallel) \
        >"$log" 2>&1 || status=$?
    if [ "$JOBS" -gt 1 ]; then cat fuzz-*.log >>"$log" 2>/dev/null && rm -f fuzz-*.log; fi
    # The last status line of the run: "#N DONE cov: C ft: F corp: K/…" (or the last pulse).
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{s+=$2} END {print s+0}')
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
    crashes=$(find "$FUZZ/artifacts/$target" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$SECONDS_EACH" "$execs" "${cov:-?}" "${ft:-?}" \
        "${corp:-?}" "$crashes" >>"$results"
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        echo "fuzz: $target found a crash (exit $status): see $log and fuzz/artifacts/$target/" >&2
    fi
done
column -t -s $'\t' "$results"
