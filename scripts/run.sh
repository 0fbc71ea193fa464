#!/usr/bin/env bash
# The main job: set up if needed, build the desktop app (release) and open it, with the bundled
# SmolLM2 ready to load. Without a display (e.g. over SSH on Linux) it says so and starts
# `adapt chat` in the terminal instead; extra arguments then go to `adapt chat`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "$(uname -s)" = Linux ] && [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    echo "run: no display here, so the app cannot open; starting 'adapt chat' in the terminal." >&2
    cargo build --release --quiet -p adapt-cli
    exec "$TARGET/release/adapt" chat --model "$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf" "$@"
fi
ui/node_modules/.bin/tauri build --no-bundle --ci
exec "$TARGET/release/adapt-app"
