#!/usr/bin/env bash
# A Python environment with the official `openai` client (pinned), for the end-to-end test of
# `adapt serve` and for scripts/bench-serve.sh.
#   scripts/reference/openai-env.sh   → prints the environment's python path on stdout
# Idempotent: creates the virtual environment (under ${ADAPT_CACHE_DIR:-~/.cache/adapt}) only
# when it is missing.
set -euo pipefail
OPENAI_VERSION=3.51.0
CACHE=${ADAPT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/adapt}
venv="$CACHE/openai-venv-$OPENAI_VERSION"
if [ ! -x "$venv/bin/python" ]; then
    echo "openai: installing openai $OPENAI_VERSION into $venv" >&2
    if ! python3 -c 'import ensurepip' 2>/dev/null && command -v apt-get >/dev/null; then
        sudo_=$([ "$(id -u)" = 0 ] || echo sudo)
        $sudo_ apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends python3-venv >&2
    fi
    mkdir -p "$CACHE"
    rm -rf "$venv.tmp"
    python3 -m venv "$venv.tmp"
    "$venv.tmp/bin/pip" install -q "openai==$OPENAI_VERSION" >&2
    mv "$venv.tmp" "$venv"
fi
echo "$venv/bin/python"
