#!/usr/bin/env bash
# Ledger state machine: signed transactions applied per second on one core.
# Usage: bench/ledger.sh [N]   (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p sharegrid-ledger --example apply_bench -- "${1:-100000}"
