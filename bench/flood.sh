#!/usr/bin/env bash
# A flood against a provider (issue: "Safe to open to strangers"): an honest
# requestor's trivial-task round trip, quiet and while another peer floods
# the provider with task, blob and ledger requests — flat out, then paced
# just under every per-peer rate. Prints the medians and their ratios.
# Usage: bench/flood.sh            (N=… tasks per series, default 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-3000}"
cargo build --release -q -p sharegrid-node --example flood
./target/release/examples/flood "$N"
