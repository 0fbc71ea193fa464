#!/usr/bin/env bash
# Regenerates tests/fixtures/parity/: tiny random models written by mlx-lm, each with the
# logits mlx-lm computes for it (see scripts/reference/make_parity_fixtures.py).
#   scripts/reference/make-parity-fixtures.sh [CASE ...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=$("$ROOT/scripts/reference/env.sh")
# mlx-lm prints progress on stdout; keep this script's stdout quiet.
"$python" "$ROOT/scripts/reference/make_parity_fixtures.py" "$ROOT/tests/fixtures/parity" "$@" >&2
