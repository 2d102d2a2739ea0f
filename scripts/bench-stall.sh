#!/usr/bin/env bash
# Issue 28's recipe for the mixed-load stall on one node: start `inkling serve` on a fresh
# data folder (default e5 encoder, demo catalog), optionally idle and warm it up with
# recommendations, then send the mixed load (events 60 : recommend 30 : search 10) at
# 1,000 requests/s for 20 s, open loop. Prints bench load's tables (by kind, and by second
# of the run), the generator's own CPU time, and the node's RSS, CPU time and threads.
#   scripts/bench-stall.sh [serve flags...]
# Environment: BIN (default target/release/inkling), IDLE seconds before the warm-up (0),
# WARM=1 for 30 s of recommendations at 750/s first, PERF=1 to record the node with
# perf for 12 s of the mixed run into stall.perf.data, GENERATOR_WARMUP=S for S seconds of
# the mixed load sent first and not counted (bench load --warmup).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-target/release/inkling}
source scripts/bench-node.sh
PORT=19701
TARGET=http://127.0.0.1:$PORT
start_node $PORT "$@"
sleep "${IDLE:-0}"
if [[ "${WARM:-0}" == 1 ]]; then
    "$BIN" bench load --target "$TARGET" --mix recommend=1 --rate 750 --duration 30
fi
if [[ "${PERF:-0}" == 1 ]]; then
    perf record -F 299 --call-graph dwarf,16384 -p "$NODE" -o stall.perf.data -- sleep 12 &
    PERF_PID=$!
fi
/usr/bin/time -f "generator: %U s user, %S s system, %e s wall" \
    "$BIN" bench load --target "$TARGET" --mix events=60,recommend=30,search=10 --rate 1000 --duration 20 --by-second ${GENERATOR_WARMUP:+--warmup $GENERATOR_WARMUP}
[[ -n "${PERF_PID:-}" ]] && wait "$PERF_PID"
ps -o rss=,time=,nlwp= -p "$NODE" | awk '{print "node: RSS " $1 " KiB, CPU " $2 ", " $3 " threads"}'
stop_node
