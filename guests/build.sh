#!/usr/bin/env bash
# Builds the example guests.
#
#   guests/build.sh            rebuild guests/wasm/*.wasm (committed; only
#                              needed after changing guests/src)
#   guests/build.sh native DIR build native executables into DIR (for bench/)
#
# Guests are built with zig's clang (a current LLVM with its own
# wasi-libc), from PyPI's `ziglang` package, installed with pip when
# missing. Debian's clang 14 built them before; its code ran the integer
# kernel at 1.42x native unmetered (bench/RESULTS.md). The committed .wasm
# files are what tests and users run: fuel counts belong to the exact bytes,
# so rebuild only on purpose.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
guests=(mandelbrot pi wordcount hashchain probe)
ZIG_VERSION=0.17.1

need_toolchain() {
    if ! python3 -c "import ziglang" 2>/dev/null; then
        echo "installing zig $ZIG_VERSION from PyPI (ziglang)" >&2
        python3 -m pip install --quiet --user "ziglang==$ZIG_VERSION" \
            || python3 -m pip install --quiet "ziglang==$ZIG_VERSION"
    fi
}

case "${1:-wasm}" in
wasm)
    need_toolchain
    for g in "${guests[@]}"; do
        python3 -m ziglang cc -target wasm32-wasi -O3 -Wall -Wextra -s \
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
