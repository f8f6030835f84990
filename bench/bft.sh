#!/usr/bin/env bash
# Finality (issue: "Validators who distrust each other"): transfers offered
# at RATE a second for SECS seconds by 64 clients at once, acknowledged by
# validators (SQLite, fsync, group commit), ordered by one validator (the
# node's producer) and then by four validators running Simplex on loopback,
# in one run. Prints transfers acknowledged and finalized per second and the
# latency from submission to finality.
# Usage: bench/bft.sh [RATE [SECS [BLOCK_MS]]]      (default 5000 10 50)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p sharegrid-node --example bft
./target/release/examples/bft "${1:-5000}" "${2:-10}" "${3:-50}"
