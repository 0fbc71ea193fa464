#!/usr/bin/env bash
# The reference Python environment: mlx-lm on the same MLX release and BLAS as ours, the
# `gguf` package (llama.cpp's GGUF reader / writer and block decoders) and llama.cpp itself
# (`llama-cpp-python`, built from source for the CPU).
#   scripts/reference/env.sh   → prints the environment's python path on stdout
# Idempotent: creates the virtual environment only when it is missing and adds the GGUF
# references once. On Linux the MLX version is read from .cargo/mlx-linux.toml (written by
# scripts/setup.sh) and MLX's bundled BLAS / LAPACK are replaced by the system's OpenBLAS, as
# our runtime uses; elsewhere (macOS) mlx-lm brings its own MLX. llama.cpp is compiled once
# into a wheel kept under the cache (minutes on two cores); later environments install it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MLX_LM_VERSION=0.32.2
GGUF_VERSION=0.19.0
LLAMA_CPP_PYTHON_VERSION=0.3.36
CACHE=${ADAPT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/adapt}
mlx_version=$(sed -n 's/.*mlx-runtime\/mlx-\([0-9.]*\)-sys.*/\1/p' "$ROOT/.cargo/mlx-linux.toml" 2>/dev/null | head -n1 || true)
venv="$CACHE/reference-venv-mlx-${mlx_version:-metal}-lm-$MLX_LM_VERSION"
if [ ! -x "$venv/bin/python" ]; then
    echo "reference: installing mlx-lm $MLX_LM_VERSION into $venv" >&2
    if ! python3 -c 'import ensurepip' 2>/dev/null && command -v apt-get >/dev/null; then
        # Debian and Ubuntu ship venv's pip bootstrap separately.
        sudo_=$([ "$(id -u)" = 0 ] || echo sudo)
        $sudo_ apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends python3-venv >&2
    fi
    mkdir -p "$CACHE"
    rm -rf "$venv.tmp"
    python3 -m venv "$venv.tmp"
    if [ -n "$mlx_version" ]; then
        "$venv.tmp/bin/pip" install -q "mlx[cpu]==$mlx_version" "mlx-lm==$MLX_LM_VERSION" >&2
        libs=$("$venv.tmp/bin/python" -c 'import glob, os, site; print(glob.glob(os.path.join(site.getsitepackages()[0], "mlx_cpu.libs"))[0])')
        openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread
        for lib in "$libs"/libblas-*.so.*; do ln -sf "$openblas/libblas.so.3" "$lib"; done
        for lib in "$libs"/liblapack-*.so.*; do ln -sf "$openblas/liblapack.so.3" "$lib"; done
    else
        "$venv.tmp/bin/pip" install -q "mlx-lm==$MLX_LM_VERSION" >&2
    fi
    mv "$venv.tmp" "$venv"
fi
# The GGUF references, added to an existing environment too.
extras="$venv/.gguf-$GGUF_VERSION-llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION"
if [ ! -e "$extras" ]; then
    wheels="$CACHE/wheels/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION-cpu"
    if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        echo "reference: building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (llama.cpp for the CPU) into $wheels" >&2
        command -v cmake >/dev/null || { echo "reference: cmake is needed to build llama.cpp" >&2; exit 1; }
        rm -rf "$wheels.tmp"
        started=$(date +%s)
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_METAL=OFF -DGGML_CUDA=OFF -DGGML_BLAS=OFF -DLLAMA_CURL=OFF" \
            CMAKE_BUILD_PARALLEL_LEVEL=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2) \
            "$venv/bin/python" -m pip wheel -q --no-deps --no-binary llama-cpp-python \
            "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -w "$wheels.tmp" >&2
        mv "$wheels.tmp" "$wheels"
        echo "reference: llama.cpp built in $(( $(date +%s) - started )) s" >&2
    fi
    "$venv/bin/python" -m pip install -q "gguf==$GGUF_VERSION" "$wheels"/llama_cpp_python-*.whl >&2
    touch "$extras"
fi
echo "$venv/bin/python"
