#!/usr/bin/env bash
# Runs every check CI runs: set-up, formatting, lints, and all tests — the slow ones included
# (training on the real model, the comparisons with mlx-lm, whose environment is installed
# here): the one gate, ADAPT_SLOW_TESTS, is 1 unless set otherwise, and with CI=true a slow
# test that would not run fails. ADAPT_TARGET_DIR, if set, keeps build outputs outside the
# checkout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh" --for-tests
cd "$ROOT"
if [ -n "${ADAPT_TARGET_DIR:-}" ]; then export CARGO_TARGET_DIR="$ADAPT_TARGET_DIR"; fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# The app crate embeds the built page; build it first, and test the app crate with the same
# features `tauri build` uses so its dependencies are built once.
echo "== ui: type check and build"
(cd ui && npm run --silent check && npm run --silent build)
APP_FEATURES=(--features adapt-app/custom-protocol)
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== structure: no module cycles, no long functions"
python3 scripts/check-structure.py
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked "${APP_FEATURES[@]}" -- -D warnings
echo "== cargo test"
# Tests never touch the person's own data directory.
ADAPT_DATA_DIR=$(mktemp -d)
export ADAPT_DATA_DIR
trap 'rm -rf "$ADAPT_DATA_DIR"' EXIT
# Slow tests compare with the reference (mlx-lm) in its own Python environment.
export ADAPT_SLOW_TESTS=${ADAPT_SLOW_TESTS:-1}
if [ "$ADAPT_SLOW_TESTS" = 1 ] && [ -z "${ADAPT_REFERENCE_PYTHON:-}" ]; then
    ADAPT_REFERENCE_PYTHON=$("$ROOT/scripts/reference/env.sh")
    export ADAPT_REFERENCE_PYTHON
fi
# The end-to-end test of `adapt serve` talks to it with the official openai client.
if [ "$ADAPT_SLOW_TESTS" = 1 ] && [ -z "${ADAPT_OPENAI_PYTHON:-}" ]; then
    ADAPT_OPENAI_PYTHON=$("$ROOT/scripts/reference/openai-env.sh")
    export ADAPT_OPENAI_PYTHON
fi
cargo test --workspace --locked "${APP_FEATURES[@]}"
echo "== ui: unit tests (Vitest)"
(cd ui && npx vitest run)
echo "== ui: every view with a mocked backend in Chromium (Playwright)"
(cd ui && npm run --silent build:mock && node tests/browser.mjs)
echo "== app: build (debug) with its .deb, then the real window under Xvfb (WebDriver)"
ui/node_modules/.bin/tauri build --debug --bundles deb --ci
for deb in "$TARGET"/debug/bundle/deb/*.deb; do scripts/check-deb.sh "$deb"; done
# The Hub look-alike the app pulls a model from.
cargo build -p adapt-hub --features test-util --example fake_hub --locked
export ADAPT_APP="$TARGET/debug/adapt-app" ADAPT_FAKE_HUB="$TARGET/debug/examples/fake_hub" \
    ADAPT_MODELS_DIR="$ROOT/models-cache"
# A data folder of its own: the run it trains is run #1.
ADAPT_DATA_DIR="$ADAPT_DATA_DIR/app" xvfb-run -a -s "-screen 0 1280x800x24" node ui/tests/app.mjs
# Again with the system asking for dark: the page follows it (screenshots NAME-dark.png).
GTK_THEME=Adwaita:dark ADAPT_APP_THEME=dark ADAPT_DATA_DIR="$ADAPT_DATA_DIR/app-dark" \
    xvfb-run -a -s "-screen 0 1280x800x24" node ui/tests/app.mjs
