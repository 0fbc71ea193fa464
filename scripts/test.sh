#!/usr/bin/env bash
# Runs every check CI runs: set-up, formatting, lints, and all tests (the real-model tests
# included; with ADAPT_SLOW_TESTS=1 also the slow ones, among them the comparisons with
# mlx-lm, whose environment is installed here). ADAPT_TARGET_DIR, if set, keeps build
# outputs outside the checkout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
cd "$ROOT"
if [ -n "${ADAPT_TARGET_DIR:-}" ]; then export CARGO_TARGET_DIR="$ADAPT_TARGET_DIR"; fi
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
# Tests never touch the person's own data directory.
ADAPT_DATA_DIR=$(mktemp -d)
export ADAPT_DATA_DIR
trap 'rm -rf "$ADAPT_DATA_DIR"' EXIT
# Slow tests compare with the reference (mlx-lm) in its own Python environment.
if [ "${ADAPT_SLOW_TESTS:-}" = 1 ] && [ -z "${ADAPT_REFERENCE_PYTHON:-}" ]; then
    ADAPT_REFERENCE_PYTHON=$("$ROOT/scripts/reference/env.sh")
    export ADAPT_REFERENCE_PYTHON
fi
cargo test --workspace --locked
