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
PORT=19701
TARGET=http://127.0.0.1:$PORT
DATA=$(mktemp -d "${TMPDIR:-/tmp}/inkling-stall.XXXXXX")
trap 'rm -rf "$DATA"' EXIT
"$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" "$@" >"$DATA.log" 2>&1 &
NODE=$!
until curl -sf "$TARGET/readyz" >/dev/null; do
    kill -0 "$NODE" 2>/dev/null || { echo "the node exited; see $DATA.log" >&2; exit 1; }
    sleep 0.5
done
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
kill "$NODE"
wait "$NODE" 2>/dev/null
rm -f "$DATA.log"
