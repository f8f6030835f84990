#!/usr/bin/env bash
# Two builds of sharegrid side by side in one run, on this machine, so a
# change can be judged by ratios rather than by figures taken on other days:
# the whole-stack throughput of trivial tasks (bench/throughput.sh's
# example, 8 and 16 slots per provider, r = 1 and r = 2), the task round
# trip (bench/net.sh's example), and an idle provider's memory and CPU
# (two `sharegrid node` processes, as bench/net.sh does). The builds run
# alternately, ROUNDS times each, so the machine's drift falls on both.
#
# Usage: bench/compare.sh BEFORE_DIR AFTER_DIR
#   each DIR holds release builds of `sharegrid` and the `throughput` and
#   `rtt` examples, e.g. made with:
#     git worktree add /tmp/before <commit>
#     (cd /tmp/before && cargo build --release -p sharegrid \
#        && cargo build --release -p sharegrid-node --example rtt --example throughput)
#     mkdir before && cp /tmp/before/target/release/{sharegrid,examples/rtt,examples/throughput} before/
#   (a separate target directory for each: cargo hashes workspace crates by
#   their path inside the workspace, so two checkouts must not share one).
# Environment: N (tasks, default 10000), RTT_N (default 1000), ROUNDS
# (default 2), IDLE_SECS (default 60).
set -euo pipefail
before="$1"
after="$2"
N="${N:-10000}"
RTT_N="${RTT_N:-1000}"
ROUNDS="${ROUNDS:-2}"
IDLE_SECS="${IDLE_SECS:-60}"

echo "== throughput of trivial tasks (N=$N), alternating builds, $ROUNDS round(s)"
for round in $(seq "$ROUNDS"); do
    for slots in 8 16; do
        for build in before after; do
            dir="${!build}"
            SLOTS=$slots "$dir/throughput" "$N" | sed "s/^/$build slots=$slots round=$round: /"
        done
    done
done

echo "== task round trip (RTT_N=$RTT_N)"
for round in $(seq "$ROUNDS"); do
    for build in before after; do
        dir="${!build}"
        "$dir/rtt" "$RTT_N" | sed "s/^/$build round=$round: /"
    done
done

echo "== idle provider over ${IDLE_SECS} s (after a 10 s warm-up)"
idle() {
    local bin="$1/sharegrid" tmp
    tmp="$(mktemp -d)"
    local pids=()
    export SHAREGRID_NETWORK__LISTEN='["/ip4/127.0.0.1/tcp/0"]' SHAREGRID_NETWORK__MDNS=false
    SHAREGRID_PROVIDER__ENABLED=true "$bin" --home "$tmp/p" node >"$tmp/p.out" 2>"$tmp/p.err" &
    pids+=("$!")
    local ppid="$!"
    for _ in $(seq 100); do grep -q '^listening' "$tmp/p.out" && break; sleep 0.1; done
    local addr
    addr="$(awk '/^listening/ {print $2; exit}' "$tmp/p.out")"
    SHAREGRID_NETWORK__BOOTSTRAP="[\"$addr\"]" "$bin" --home "$tmp/r" node >"$tmp/r.out" 2>"$tmp/r.err" &
    pids+=("$!")
    sleep 10
    local t0 t1 s0 s1 rss
    t0="$(awk '{print $14 + $15}' "/proc/$ppid/stat")"; s0="$(date +%s.%N)"
    sleep "$IDLE_SECS"
    t1="$(awk '{print $14 + $15}' "/proc/$ppid/stat")"; s1="$(date +%s.%N)"
    rss="$(awk '/^VmRSS/ {print $2}' "/proc/$ppid/status")"
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    rm -rf "$tmp"
    python3 - "$t0" "$t1" "$s0" "$s1" "$(getconf CLK_TCK)" "$rss" <<'PY'
import sys
t0, t1, s0, s1, hz, rss = (float(x) for x in sys.argv[1:])
secs = s1 - s0
print(f"RSS {rss/1024:.1f} MiB; CPU {(t1-t0)/hz:.2f} s over {secs:.0f} s = {100*(t1-t0)/hz/secs:.2f}% of one core")
PY
}
for build in before after; do
    dir="${!build}"
    echo "$build: $(idle "$dir")"
done
