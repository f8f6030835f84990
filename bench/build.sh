#!/usr/bin/env bash
# Clean release build time and binary size: what a new user waits for on
# `cargo run --release -- demo`. Builds in a fresh target directory (the
# crates.io downloads themselves are not timed: they are fetched first).
#
# usage: bench/build.sh [--record]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo fetch --quiet
target="$(mktemp -d)"
trap 'rm -rf "$target"' EXIT
start=$(date +%s)
CARGO_TARGET_DIR="$target" cargo build --release --quiet
secs=$(( $(date +%s) - start ))
size=$(stat -c %s "$target/release/sharegrid")
crates=$(cargo metadata --format-version 1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["packages"]))')
line="clean release build: ${secs} s; binary: $((size / 1024 / 1024)) MiB (${size} bytes, stripped); ${crates} crates in the lock file"
echo "$line"
if [ "${1:-}" = "--record" ]; then
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
    printf '\n### Build, %s — %s, %s, %s cores\n\n`bench/build.sh`: %s.\n' \
        "$(date +%F)" "$(uname -m)" "$cpu" "$(nproc)" "$line" >> "$root/bench/RESULTS.md"
fi
