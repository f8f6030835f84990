#!/usr/bin/env bash
# Scheduler benchmarks, through the real scheduler in simulation:
# makespan ÷ ideal (1,000 tasks, providers 1x–8x; then 30% leaving halfway)
# and decision time per task with 100,000 live offers.
# Usage: bench/sched.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p sharegrid-sched --example sched_bench
