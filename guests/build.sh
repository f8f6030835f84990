#!/usr/bin/env bash
# Builds the example guests.
#
#   guests/build.sh            rebuild guests/wasm/*.wasm (committed; only
#                              needed after changing guests/src)
#   guests/build.sh native DIR build native executables into DIR (for bench/)
#
# Installs Debian's wasm32 C toolchain (clang, lld, wasi-libc, compiler-rt)
# when it is missing. The committed .wasm files are what tests and users run:
# fuel counts belong to the exact bytes, so rebuild only on purpose.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
guests=(mandelbrot pi wordcount hashchain probe)

need_toolchain() {
    if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null \
        || [ ! -e /usr/lib/wasm32-wasi/libc.a ]; then
        echo "installing the wasm32 C toolchain (clang lld wasi-libc libclang-rt-dev-wasm32)" >&2
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq clang lld wasi-libc libclang-rt-dev-wasm32 >/dev/null
    fi
}

case "${1:-wasm}" in
wasm)
    need_toolchain
    for g in "${guests[@]}"; do
        clang --target=wasm32-wasi -O2 -Wall -Wextra -Wl,--strip-all \
            -o "$here/wasm/$g.wasm" "$here/src/$g.c"
        echo "built guests/wasm/$g.wasm ($(stat -c %s "$here/wasm/$g.wasm") bytes)"
    done
    ;;
native)
    out="${2:?usage: build.sh native DIR}"
    mkdir -p "$out/in" "$out/out"
    for g in "${guests[@]}"; do
        cc -O2 -Wall -Wextra -DIN_DIR="\"$out/in\"" -DOUT_DIR="\"$out/out\"" \
            -o "$out/$g" "$here/src/$g.c" -lm
    done
    echo "built native guests in $out"
    ;;
*)
    echo "usage: $0 [wasm | native DIR]" >&2
    exit 2
    ;;
esac
