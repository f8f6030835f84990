#!/usr/bin/env python3
"""Example guests: native vs sandbox, side by side in one run.

For each kernel it times the native build (gcc -O2, from guests/build.sh) and
the committed .wasm (zig cc -O3) under `sharegrid run` in several
metering/determinism configurations, and the earlier clang-14 build of the
same source (taken from git at CLANG14_COMMIT) under inline gas, interleaved
round by round so machine noise hits all alike.
Sandbox time is the run time the sandbox reports (instantiate -> exit; the
module is already compiled and cached, inputs already loaded). Reports
medians and wasm/native ratios, plus the fuel counts (which must not vary).

Also measures the compiled-module cache (first run compiles, second loads)
and the node benchmark (gigafuel/s).

usage: bench/guests.py [--rounds N] [--no-build] [--record]
  --record  append the results to bench/RESULTS.md
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
BIN = os.path.join(ROOT, "target", "release", "sharegrid")
NATIVE = os.path.join(OUT, "native")

# name, kind, args (same for native and wasm), needs /in, quick args for warm-up
KERNELS = [
    ("mandelbrot", "float", ["0", "0", "1", "1", "1600", "1200", "1000"], False, ["0", "0"]),
    ("hashchain", "integer", ["3000000"], False, ["10"]),
    ("pi", "int+float", ["1", "200000000"], False, ["1", "10"]),
    ("wordcount", "bytes", [], True, []),
]

# The last commit whose guests/wasm were built by Debian's clang 14.
CLANG14_COMMIT = "490d664"
CLANG14 = os.path.join(OUT, "clang14")

# Each with its wall-clock timeout enforced unless it says "no timeout".
CONFIGS = [
    ("inline gas", ["--metering", "inline"]),
    ("inline gas, clang 14 build", ["--metering", "inline", "--clang14"]),
    ("no metering, clang 14 build, no timeout", ["--metering", "off", "--no-timeout", "--clang14"]),
    ("inline gas, portable", ["--metering", "inline", "--portable"]),
    ("wasmtime fuel", ["--metering", "fuel"]),
    ("wasmtime fuel, no timeout", ["--metering", "fuel", "--no-timeout"]),
    ("no metering, no timeout", ["--metering", "off", "--no-timeout"]),
]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()}, {model}, {os.cpu_count()} cores"


def make_input():
    """100 MiB of text for wordcount, written once."""
    d = os.path.join(NATIVE, "in")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "big.txt")
    if not os.path.exists(path) or os.path.getsize(path) < 100 << 20:
        line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
        with open(path, "wb") as f:
            f.write(line * ((100 << 20) // len(line)))
    return d


def run_native(name, args):
    t = time.perf_counter()
    sh([os.path.join(NATIVE, name)] + args, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def clang14_guests():
    """The clang-14 builds of the guests, from git."""
    os.makedirs(CLANG14, exist_ok=True)
    for name, *_ in KERNELS:
        wasm = sh(["git", "show", f"{CLANG14_COMMIT}:guests/wasm/{name}.wasm"], cwd=ROOT,
                  stdout=subprocess.PIPE).stdout
        with open(os.path.join(CLANG14, name + ".wasm"), "wb") as f:
            f.write(wasm)


def run_wasm(name, args, extra, home, indir):
    wasm_dir = os.path.join(ROOT, "guests", "wasm")
    if "--clang14" in extra:
        extra = [e for e in extra if e != "--clang14"]
        wasm_dir = CLANG14
    cmd = [BIN, "--home", home, "run", "--json", os.path.join(wasm_dir, name + ".wasm")]
    cmd += extra + ["--timeout", "10m", "--fuel", "10000G"]
    if indir:
        cmd += ["--in", indir]
    cmd += ["--"] + args
    out = sh(cmd, stdout=subprocess.PIPE).stdout
    v = json.loads(out)
    assert v["outcome"]["kind"] == "completed", v["message"]
    return v["run_ms"] / 1e3, v["fuel"], v["result_hash"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--record", action="store_true")
    a = ap.parse_args()

    if not a.no_build:
        sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    sh([os.path.join(ROOT, "guests", "build.sh"), "native", NATIVE], stdout=subprocess.DEVNULL)
    indir = make_input()
    clang14_guests()
    home = tempfile.mkdtemp(prefix="sharegrid-bench-")

    # Warm up: compile every module in every config (cached afterwards).
    for name, _, _, needs_in, warm in KERNELS:
        for _, extra in CONFIGS:
            run_wasm(name, warm, extra, home, indir if needs_in else None)

    times = {(k[0], c): [] for k in KERNELS for c in ["native"] + [c for c, _ in CONFIGS]}
    fuels = {(k[0], c): set() for k in KERNELS for c, _ in CONFIGS}
    hashes = {k[0]: set() for k in KERNELS}
    for r in range(a.rounds):
        for name, _, args, needs_in, _ in KERNELS:
            times[(name, "native")].append(run_native(name, args))
            for cname, extra in CONFIGS:
                secs, fuel, h = run_wasm(name, args, extra, home, indir if needs_in else None)
                times[(name, cname)].append(secs)
                fuels[(name, cname)].add(fuel)
                hashes[name].add(h)
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)

    med = {k: statistics.median(v) for k, v in times.items()}
    lines = []
    lines.append("| kernel | kind | native (s) | " + " | ".join(f"{c} ×" for c, _ in CONFIGS) + " | gas used (first config) |")
    lines.append("|---|---|---|" + "---|" * len(CONFIGS) + "---|")
    for name, kind, args, _, _ in KERNELS:
        nat = med[(name, "native")]
        ratios = " | ".join(f"{med[(name, c)] / nat:.2f}" for c, _ in CONFIGS)
        fuel = fuels[(name, CONFIGS[0][0])]
        lines.append(f"| {name} {' '.join(args)} | {kind} | {nat:.3f} | {ratios} | {min(fuel):,}"
                     + ("" if len(fuel) == 1 else " VARIED") + " |")
    for name, _, _, _, _ in KERNELS:
        for cname, _ in CONFIGS:
            if len(fuels[(name, cname)]) != 1:
                print(f"WARNING: {name} under {cname} used varying fuel {fuels[(name, cname)]}", file=sys.stderr)
        # Two builds compute the same outputs; only their fuel differs.
        if len(hashes[name]) > 2:
            print(f"WARNING: {name} gave different result hashes across configs", file=sys.stderr)

    # Module cache: fresh home, first run compiles, second loads from disk.
    cache_home = tempfile.mkdtemp(prefix="sharegrid-cache-")
    prep = []
    for _ in range(2):
        out = sh([BIN, "--home", cache_home, "run", "--json", os.path.join(ROOT, "guests", "wasm", "mandelbrot.wasm"),
                  "--", "0", "0"], stdout=subprocess.PIPE).stdout
        v = json.loads(out)
        prep.append((v["module_source"], v["prepare_ms"]))
    bench = json.loads(sh([BIN, "bench", "--json", "--rounds", "5"], stdout=subprocess.PIPE).stdout)
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(cache_home, ignore_errors=True)

    report = "\n".join(lines)
    report += (f"\n\nModule cache (mandelbrot.wasm, fresh home): first run {prep[0][0]} in "
               f"{prep[0][1]:.1f} ms, second run {prep[1][0]} in {prep[1][1]:.1f} ms.\n"
               f"Node benchmark: {bench['speed']:.3f} Gfuel/s ({bench['fuel_per_round']:,} fuel per round).\n")
    print(report)
    if a.record:
        record("Guests: wasm ÷ native", f"`bench/guests.py --rounds {a.rounds}`, medians of {a.rounds} interleaved rounds.",
               report)


def record(title, how, report):
    """Appends a dated section to bench/RESULTS.md."""
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a") as f:
        f.write(f"\n### {title}, {datetime.date.today()} — {machine()}\n\n{how}\n\n{report}")


if __name__ == "__main__":
    main()
