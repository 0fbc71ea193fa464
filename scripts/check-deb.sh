#!/usr/bin/env bash
# Checks that the app's .deb carries what it needs to run where nothing was prepared: the app,
# MLX's runtime under /usr/lib/adapt with every library it loads resolved inside the package
# or on the system, and an app binary that looks there.
set -euo pipefail
deb=${1:?usage: check-deb.sh FILE.deb}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
fail() { echo "check-deb: $*" >&2; exit 1; }
[ -x "$root/usr/bin/adapt-app" ] || fail "no /usr/bin/adapt-app in $deb"
lib="$root/usr/lib/adapt/mlx/lib/libmlx.so"
[ -f "$lib" ] || fail "no MLX runtime (/usr/lib/adapt/mlx/lib/libmlx.so) in $deb: run scripts/setup.sh before building"
readelf -d "$root/usr/bin/adapt-app" | grep -E 'R(UN)?PATH' | grep -q '/usr/lib/adapt/mlx/lib' ||
    fail "adapt-app does not look for MLX in /usr/lib/adapt/mlx/lib"
missing=$(ldd "$lib" | grep 'not found' || true)
[ -z "$missing" ] || fail "libmlx.so in $deb cannot load: $missing"
# Its BLAS / LAPACK resolve to the copies in the package (its own rpath), not the build machine.
ldd "$lib" | grep -E 'lib(blas|lapack)-' | grep -vq "$root" &&
    fail "libmlx.so's BLAS / LAPACK resolve outside the package"
dpkg-deb -f "$deb" Depends | grep -q libopenblas0-pthread || fail "the package does not depend on OpenBLAS"
echo "check-deb: $(basename "$deb") carries the app and MLX's runtime ($(du -sh "$root/usr/lib/adapt" | cut -f1))"
