#!/usr/bin/env bash
# Wall time of an N-trial sweep (`adapt sweep`: one process, the model loaded and the data
# prepared once) against N separate `adapt train` runs of the same trials (each a process that
# loads the model and checks the prepared data again).
#   scripts/bench-sweep.sh [MODEL] [DATA] [SPACE] [REPEATS]
# Defaults: the bundled SmolLM2, examples/blue-lantern.jsonl, examples/sweep-lr.yaml, 3 repeats.
# Both sides do the same work: the space is forced to prune nothing (reduction 1), and each
# separate run is given the exact settings its trial trained with (the trial's stored
# configuration). The token cache is warm for both (a warm-up sweep fills it first). The table
# gives the median over REPEATS of each side's wall time, and of the time spent training
# (the sum of the trials' training seconds) so the difference is the reload and preparation.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ADAPT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/adapt}
MODEL=${1:-$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=${2:-$ROOT/examples/blue-lantern.jsonl}
SPACE=${3:-$ROOT/examples/sweep-lr.yaml}
REPEATS=${4:-3}
cd "$ROOT"
# ADAPT_BIN picks a build of `adapt` made already (both sides always use the same one).
if [ -z "${ADAPT_BIN:-}" ]; then
    "$ROOT/scripts/setup.sh" >&2
    cargo build --release --quiet -p adapt-cli
    export ADAPT_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/adapt
fi
export ADAPT_CACHE_DIR=$CACHE
WORK=$(mktemp -d "${TMPDIR:-/tmp}/adapt-bench-sweep.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
python3 - "$MODEL" "$DATA" "$SPACE" "$REPEATS" "$WORK" <<'PY'
import json, os, statistics, subprocess, sys, time

model, data, space, repeats, work = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
adapt = os.environ["ADAPT_BIN"]
# The same space with nothing pruned, as JSON (YAML is a superset of JSON).
import re
text = open(space).read()
text = re.sub(r"(?m)^reduction:.*$", "", text) + "\nreduction: 1\n"
forced = os.path.join(work, "space.yaml")
open(forced, "w").write(text)
cache = os.path.join(work, "token-cache")

def run(args, data_dir):
    env = dict(os.environ, ADAPT_DATA_DIR=data_dir, ADAPT_CACHE_DIR=cache)
    started = time.perf_counter()
    out = subprocess.run([adapt, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"adapt {' '.join(args)} failed:\n{out.stderr}")
    return time.perf_counter() - started, out.stdout

def sweep(tag):
    d = os.path.join(work, tag)
    wall, _ = run(["sweep", "--model", model, "--data", data, "--space", forced], d)
    _, shown = run(["sweep", "show", "1", "--json"], d)
    trials = json.loads(shown)["trials"]
    return d, wall, trials

def separate(d, trials, tag):
    wall, trained = 0.0, 0.0
    for t in sorted(trials, key=lambda t: t["number"]):
        _, shown = run(["runs", "show", str(t["run_id"]), "--json"], d)
        request = json.loads(json.loads(shown)["run"]["config"])["request"]
        config = os.path.join(work, f"trial-{t['number']}.json")
        json.dump(request["config"], open(config, "w"))
        valid = request["data"]["ratios"]["valid"]
        seconds, out = run(["train", "--model", model, "--data", data, "--config", config,
                            "--valid-ratio", str(valid), "--json"], os.path.join(work, tag))
        wall += seconds
        trained += json.loads(out.strip().splitlines()[-1])["outcome"]["seconds"]
    return wall, trained

print("bench-sweep: warm-up sweep (fills the token cache)", file=sys.stderr)
sweep("warm-up")
rows = []
for r in range(repeats):
    print(f"bench-sweep: repeat {r + 1}/{repeats}", file=sys.stderr)
    d, sweep_wall, trials = sweep(f"sweep-{r}")
    sweep_trained = sum(t["seconds"] for t in trials)
    sep_wall, sep_trained = separate(d, trials, f"separate-{r}")
    rows.append((sweep_wall, sweep_trained, sep_wall, sep_trained))
med = [statistics.median(c) for c in zip(*rows)]
n = len(trials)
print(f"model {os.path.basename(model)}, {n} trials, median of {repeats}")
print(f"{'':24}{'wall s':>10}{'training s':>12}{'other s':>10}")
print(f"{'adapt sweep':24}{med[0]:>10.1f}{med[1]:>12.1f}{med[0] - med[1]:>10.1f}")
print(f"{f'{n} x adapt train':24}{med[2]:>10.1f}{med[3]:>12.1f}{med[2] - med[3]:>10.1f}")
print(f"saved: {med[2] - med[0]:.1f} s ({(med[2] - med[0]) / med[2] * 100:.0f} % of the separate runs)")
PY
