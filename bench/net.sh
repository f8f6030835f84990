#!/usr/bin/env bash
# Network benchmarks (issue: "Peer-to-peer network and the provider agent"):
#  1. round-trip time of a trivial task between two nodes on 127.0.0.1,
#     median and p99 over N (default 1000) sequential tasks;
#  2. an idle provider's resident memory and CPU use: two `sharegrid node`
#     processes (a provider and a requestor connected to it, so offers,
#     gossip heartbeats and pings all flow), the provider sampled over
#     IDLE_SECS (default 60) after a warm-up.
# Usage: bench/net.sh            (N=… IDLE_SECS=… to change)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-1000}"
IDLE_SECS="${IDLE_SECS:-60}"

cargo build --release -q -p sharegrid
cargo build --release -q -p sharegrid-node --example rtt
echo "== task round trip (release build)"
./target/release/examples/rtt "$N"

echo "== idle provider"
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
export SHAREGRID_NETWORK__LISTEN='["/ip4/127.0.0.1/tcp/0"]' SHAREGRID_NETWORK__MDNS=false
SHAREGRID_PROVIDER__ENABLED=true ./target/release/sharegrid --home "$tmp/p" node >"$tmp/p.out" 2>"$tmp/p.err" &
pids+=("$!"); ppid="$!"
for _ in $(seq 100); do grep -q '^listening' "$tmp/p.out" && break; sleep 0.1; done
addr="$(awk '/^listening/ {print $2; exit}' "$tmp/p.out")"
SHAREGRID_NETWORK__BOOTSTRAP="[\"$addr\"]" ./target/release/sharegrid --home "$tmp/r" node >"$tmp/r.out" 2>"$tmp/r.err" &
pids+=("$!")
sleep 10 # warm-up: connection, first offers, the allocator settling
ticks() { awk '{print $14 + $15}' "/proc/$ppid/stat"; }
t0="$(ticks)"; s0="$(date +%s.%N)"
sleep "$IDLE_SECS"
t1="$(ticks)"; s1="$(date +%s.%N)"
hz="$(getconf CLK_TCK)"
rss="$(awk '/^VmRSS/ {print $2}' "/proc/$ppid/status")"
offers="$(./target/release/sharegrid --home "$tmp/r" offers --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
python3 - "$t0" "$t1" "$s0" "$s1" "$hz" "$rss" "$offers" <<'PY'
import sys
t0, t1, s0, s1, hz, rss, offers = (float(x) for x in sys.argv[1:])
secs = s1 - s0
print(f"provider RSS {rss/1024:.1f} MiB; CPU {(t1-t0)/hz:.2f} s over {secs:.0f} s = {100*(t1-t0)/hz/secs:.2f}% of one core; requestor sees {int(offers)} offer(s)")
PY
