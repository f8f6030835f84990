#!/usr/bin/env bash
# Clean release build time and binary size: what a new user waits for on
# `cargo run --release -- demo`, which builds the `sharegrid` binary and its
# dependencies (not the networking crates it does not use yet). Builds in a
# fresh target directory (crates.io downloads are fetched first, not timed).
#
# usage: bench/build.sh [--record]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo fetch --quiet
target="$(mktemp -d)"
trap 'rm -rf "$target"' EXIT
start=$(date +%s)
CARGO_TARGET_DIR="$target" cargo build --release --quiet -p sharegrid
secs=$(( $(date +%s) - start ))
size=$(stat -c %s "$target/release/sharegrid")
crates=$(cargo tree -p sharegrid -e normal,build --prefix none --no-dedupe 2>/dev/null | sort -u | wc -l)
line="clean release build of the sharegrid binary: ${secs} s; binary: $((size / 1024 / 1024)) MiB (${size} bytes, stripped); ${crates} crates built"
echo "$line"
if [ "${1:-}" = "--record" ]; then
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
    printf '\n### Build, %s — %s, %s, %s cores\n\n`bench/build.sh`: %s.\n' \
        "$(date +%F)" "$(uname -m)" "$cpu" "$(nproc)" "$line" >> "$root/bench/RESULTS.md"
fi
