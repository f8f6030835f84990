#!/usr/bin/env bash
# The ledger:
#  1. signed transactions applied per second on one core (the state machine);
#  2. `sharegrid ledger verify` on a stored chain: blocks (and transactions)
#     replayed per second, every signature, hash link and state root checked.
# Usage: bench/ledger.sh [N] [BLOCKS] [TXS_PER_BLOCK]   (defaults 100000 200 100)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p sharegrid-ledger --example apply_bench -- "${1:-100000}"
cargo build --release -q -p sharegrid
cargo build --release -q -p sharegrid-node --example make_chain
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
target/release/examples/make_chain "$dir" "${2:-200}" "${3:-100}"
target/release/sharegrid --home "$dir" ledger verify
