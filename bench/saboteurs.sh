#!/usr/bin/env bash
# The saboteur simulation: seeded populations of providers (honest,
# saboteurs, lazy guessers, a colluding group of 20 % then 33 %, rejoiners
# under fresh identities) under each verification policy, through the real
# scheduler and the real ledger state (escrows, settlements, stake,
# disputes, verdicts). Prints the Markdown tables of bench/RESULTS.md.
# Usage: bench/saboteurs.sh [PROVIDERS JOBS TASKS SEED]   (default 300 40 200 1)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p sharegrid-node --example saboteurs -- "${1:-300}" "${2:-40}" "${3:-200}" "${4:-1}"
