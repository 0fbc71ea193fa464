#!/usr/bin/env bash
# The main job: set up if needed, build `adapt` (release), and chat with the bundled SmolLM2.
# Extra arguments go to `adapt chat` (e.g. --system "Be brief." --temperature 0.7).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
cd "$ROOT"
cargo build --release --quiet -p adapt-cli
exec "$ROOT/target/release/adapt" chat --model "$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf" "$@"
