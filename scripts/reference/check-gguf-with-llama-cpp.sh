#!/usr/bin/env bash
# Optional cross-check of the parity fixtures' GGUF copies with llama.cpp itself: each
# tests/fixtures/parity/*/model.gguf is run by llama.cpp on the fixture's token ids and its
# logits compared with mlx-lm's (reference.json). Not part of the tests (building llama.cpp
# takes long on a small machine); run it after changing scripts/reference/parity_gguf.py.
#   scripts/reference/check-gguf-with-llama-cpp.sh LLAMA_CPP_DIR
# LLAMA_CPP_DIR holds llama.cpp's headers (include/llama.h, ggml.h, …) and libraries
# (lib/libllama.so, libggml*.so): a llama.cpp build, e.g. the one `pip install
# llama-cpp-python` compiles from its source package.
# Expected: the same argmax and differences of a few 1e-3 (llama.cpp's CPU kernels round
# differently) for every file llama.cpp can take as written: the Gemma copies state settings
# llama.cpp infers instead (attention scale, window period), and llama.cpp's Qwen3-MoE has no
# dense blocks.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LLAMA=${1:?usage: $0 LLAMA_CPP_DIR}
tool=$(mktemp -d)/llama_cpp_logits
cc -O1 -o "$tool" "$ROOT/scripts/reference/llama_cpp_logits.c" -I"$LLAMA/include" \
    -L"$LLAMA/lib" -lllama -lggml -lggml-base -Wl,-rpath,"$LLAMA/lib"
python3 - "$tool" "$ROOT/tests/fixtures/parity" <<'PY'
import json, os, subprocess, sys
tool, root = sys.argv[1:]
for case in sorted(os.listdir(root)):
    gguf = os.path.join(root, case, "model.gguf")
    if not os.path.exists(gguf):
        continue
    ref = json.load(open(os.path.join(root, case, "reference.json")))
    run = subprocess.run([tool, gguf] + [str(i) for i in ref["ids"]], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"{case:20} llama.cpp cannot run it: {run.stderr.strip()}")
        continue
    ours = json.loads(run.stdout)
    diff = max(abs(a - b) for ra, rb in zip(ours, ref["logits"]) for a, b in zip(ra, rb))
    top = lambda r: max(range(len(r)), key=r.__getitem__)
    same = sum(top(a) == top(b) for a, b in zip(ours, ref["logits"]))
    print(f"{case:20} max |Δ| {diff:.2e}, same argmax at {same}/{len(ours)} positions")
PY
