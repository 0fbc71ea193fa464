#!/usr/bin/env bash
# Packs what a GPU lease needs into .gpu/ (git-ignored), in call-sized folders (each under the
# 64 MiB a call carries): the release `adapt` and the `logits` example (stripped, xz), the
# tokenizer of the bundled SmolLM2, MLX's CUDA runtime wheel (`mlx-cuda-13`, the version our
# runtime pins), its CPU runtime wheel (`mlx-cpu`, what `auto` starts again on when the GPU
# cannot be used) and the reference's wheels (`mlx`, `mlx-lm`) for the device's Python 3.12, and
# SmolLM2 converted to an MLX folder (for the greedy check), split into parts.
#   scripts/gpu/pack.sh [--no-smollm2] [--baseline ADAPT_XZ]
#       → .gpu/1 … .gpu/N, and .gpu/MANIFEST (sha256 of every part); without SmolLM2 (no greedy
#       check on it) the parts fit three calls instead of four. `--baseline` adds another build's
#       `adapt` (an `adapt.xz` an earlier pack made) as `adapt-baseline.xz`, for the suite's
#       `versus` stage: the same benchmarks on both builds in one lease (a change's before and
#       after).
# Then run each part's call and the suite as docs/gpu.md says.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/.gpu
CACHE=${ADAPT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/adapt}
PART=48M
smollm2=yes baseline=
while [ $# -gt 0 ]; do
    case "$1" in
    --no-smollm2) smollm2=no ;;
    --baseline) baseline=$(realpath "$2"); shift ;;
    *) echo "pack: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
"$ROOT/scripts/setup.sh" >&2
cd "$ROOT"
version=$(sed -n 's/.*mlx-runtime\/mlx-\([0-9.]*\)-sys.*/\1/p' .cargo/mlx-linux.toml | head -n1)
[ -n "$version" ] || { echo "pack: no MLX version in .cargo/mlx-linux.toml" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release --locked -p adapt-cli >&2
cargo build --release --locked -p adapt-engine --example logits >&2

rm -rf "$OUT" && mkdir -p "$OUT/stage"
stage=$OUT/stage
for bin in "$target/release/adapt" "$target/release/examples/logits"; do
    strip -o "$stage/$(basename "$bin")" "$bin"
    xz -6 -T0 "$stage/$(basename "$bin")"
done

[ -z "$baseline" ] || cp "$baseline" "$stage/adapt-baseline.xz"

# The tokenizer files (and, for the greedy check, the whole model) of the bundled SmolLM2.
smol=$CACHE/gpu/smollm2-mlx
if [ ! -f "$smol/config.json" ]; then
    rm -rf "$smol" && mkdir -p "$(dirname "$smol")"
    "$target/release/adapt" convert "$ROOT/models-cache/SmolLM2-135M-Instruct.Q4_1.gguf" "$smol" >&2
fi
mkdir -p "$stage/tokenizer"
cp "$smol/tokenizer.json" "$smol/tokenizer_config.json" "$stage/tokenizer/"
[ "$smollm2" = no ] || tar -C "$(dirname "$smol")" -cf "$stage/smollm2.tar" "$(basename "$smol")"

wheels=$CACHE/gpu/wheels-$version
if [ ! -f "$wheels/complete" ] || ! ls "$wheels"/mlx_cpu-*.whl >/dev/null 2>&1; then
    mkdir -p "$wheels"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 -d "$wheels" \
        "mlx==$version" "mlx-cuda-13==$version" "mlx-cpu==$version" "mlx-lm==$version" >&2
    touch "$wheels/complete"
fi
cp "$wheels"/*.whl "$stage/"

# Split the big files; small ones travel whole. Each call folder holds at most ~50 MB.
( cd "$stage"
  for big in mlx_cuda_13-*.whl smollm2.tar; do
      [ -f "$big" ] || continue
      split -b "$PART" -d "$big" "$big.part-"; rm "$big"
  done
  sha256sum * tokenizer/* > "$OUT/MANIFEST" 2>/dev/null || true )
n=1 size=0 limit=$((50 * 1024 * 1024))
mkdir -p "$OUT/$n"
for f in $(cd "$stage" && ls -S); do
    [ -f "$stage/$f" ] || continue
    s=$(stat -c %s "$stage/$f")
    if [ $((size + s)) -gt $limit ] && [ "$size" -gt 0 ]; then n=$((n + 1)); size=0; mkdir -p "$OUT/$n"; fi
    mv "$stage/$f" "$OUT/$n/"; size=$((size + s))
done
mv "$stage/tokenizer" "$OUT/$n/"
cp "$OUT/MANIFEST" "$OUT/$n/"
rmdir "$stage"
for d in "$OUT"/[0-9]*; do echo "$(basename "$d"): $(du -sh "$d" | cut -f1)  $(ls "$d" | tr '\n' ' ')"; done
echo "pack: $n calls; carry .gpu/K in call K (scripts/gpu/device.sh store), the last one runs" >&2
