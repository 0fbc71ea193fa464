#!/usr/bin/env bash
# Runs on the GPU machine (see docs/gpu.md), from the repository's root of the copy a call
# brings there.
#   scripts/gpu/device.sh store K          keep the carried part .gpu/K under $WORK
#   scripts/gpu/device.sh run [STAGE …]    join the parts, install, run scripts/gpu/suite.py
# Parts survive between calls while the machine stays warm; `run` checks every part against
# the manifest and says which are missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${ADAPT_GPU_WORK:-/tmp/adapt-gpu}
OUT=${OUT:-$WORK/out}
PARTS=$WORK/parts
mkdir -p "$PARTS" "$OUT"
case "${1:-}" in
store)
    cp -r "$ROOT/.gpu/$2/." "$PARTS/"
    echo "stored part $2: $(ls "$PARTS" | wc -l) files kept"
    ;;
run)
    shift
    cd "$PARTS"
    if ! sha256sum --quiet -c MANIFEST; then
        echo "device: parts are missing or damaged (above); store every .gpu/K first" >&2
        exit 1
    fi
    if [ ! -f "$WORK/installed" ]; then
        for big in mlx_cuda_13 smollm2; do
            ls $big*.part-00 >/dev/null 2>&1 || continue
            cat "$big"*.part-* > "$WORK/$(ls $big*.part-00 | sed 's/.part-00//')"
        done
        python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" \
            "$WORK"/mlx_cuda_13-*.whl ./mlx-*.whl ./mlx_lm-*.whl
        # MLX's CPU runtime apart from the CUDA one: what `auto` starts again on without a GPU.
        python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/cpu" ./mlx_cpu-*.whl
        # libmlx.so finds cuBLAS, NVRTC, cuDNN and NCCL at $ORIGIN/../../nvidia: the image's.
        nvidia=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))')/nvidia
        mkdir -p "$WORK/site/nvidia"
        for d in "$nvidia"/*; do ln -sfn "$d" "$WORK/site/nvidia/"; done
        # MLX compiles some kernels at run time against the toolkit's headers; the pip
        # packages lack crt/, which the image's CUDA toolkit has.
        include=$nvidia/cu13/include
        if [ ! -e "$include/crt" ] && [ -d /usr/local/cuda/include/crt ]; then
            rm "$WORK/site/nvidia/cu13" && mkdir -p "$WORK/site/nvidia/cu13/include"
            for d in "$nvidia"/cu13/*; do [ "$(basename "$d")" = include ] || ln -sfn "$d" "$WORK/site/nvidia/cu13/"; done
            for f in "$include"/*; do ln -sfn "$f" "$WORK/site/nvidia/cu13/include/"; done
            ln -sfn /usr/local/cuda/include/crt "$WORK/site/nvidia/cu13/include/crt"
        fi
        if [ -f "$WORK/smollm2.tar" ]; then
            tar -C "$WORK" -xf "$WORK/smollm2.tar" && mv "$WORK/smollm2-mlx" "$WORK/smollm2"
        fi
        cp -r tokenizer "$WORK/tokenizer"
        for bin in adapt logits adapt-baseline; do
            [ -f "$bin.xz" ] || continue
            xz -dc "$bin.xz" > "$WORK/$bin"; chmod +x "$WORK/$bin"
        done
        touch "$WORK/installed"
    fi
    cd "$ROOT"
    export PYTHONPATH=$WORK/site LD_LIBRARY_PATH=$WORK/site/mlx/lib ADAPT_GPU_WORK=$WORK OUT
    export ADAPT_DATA_DIR=$WORK/data
    python3 scripts/gpu/suite.py "$@"
    ;;
*)
    echo "usage: scripts/gpu/device.sh store K | run [STAGE …]" >&2
    exit 2
    ;;
esac
