#!/usr/bin/env bash
# Runs every check CI runs: set-up, formatting, lints, and all tests (the real-model tests
# included). ADAPT_TARGET_DIR, if set, keeps build outputs outside the checkout.
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
cargo test --workspace --locked
