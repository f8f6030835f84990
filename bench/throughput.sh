#!/usr/bin/env bash
# Throughput of trivial tasks, side by side in one run: sharegrid (4 provider
# nodes + a requestor on 127.0.0.1, the whole stack, r = 1 and r = 2) and
# Dask distributed (LocalCluster, 4 worker processes, trivial Python tasks).
# Installs Dask into bench/.venv from PyPI on first use.
# Usage: bench/throughput.sh [N]   (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import distributed' 2>/dev/null; then
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install -q "dask[distributed]"
fi
cargo build --release -q -p sharegrid-node --example throughput
for slots in 8 16; do
    echo "-- $slots slots per provider"
    SLOTS=$slots ./target/release/examples/throughput "$N"
done
bench/.venv/bin/python bench/dask_trivial.py "$N" 4
