#!/usr/bin/env bash
# What the trust boundary costs: the same open-loop load against a node without API keys
# (`open`) and with them (`keyed`: a storefront key checked, rate-limited and counted on
# every request), each on a fresh node, rounds interleaved. Prints the node's CPU time per
# request (robust to other load on the machine) and the latency percentiles.
#   scripts/bench-auth.sh [INKLING_BINARY] [ROUNDS] [EVENTS_RATE] [RECOMMEND_RATE]
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${1:-target/release/inkling}
ROUNDS=${2:-3}
EVENTS_RATE=${3:-2000}
RECOMMEND_RATE=${4:-500}
KEY=ink_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
HASH=$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)
for round in $(seq "$ROUNDS"); do
for kind in "events=1 $EVENTS_RATE" "recommend=1 $RECOMMEND_RATE"; do
for variant in open keyed; do
  case $variant in
    open) serve=(); call=();;
    keyed) serve=(--api-keys "storefront:$HASH"); call=(--api-key "$KEY");;
  esac
  port=$((19600 + RANDOM % 300)); rm -rf /tmp/ba-$port
  $BIN serve --listen 127.0.0.1:$port --model none --data-dir /tmp/ba-$port "${serve[@]}" >/dev/null 2>&1 &
  pid=$!
  for i in $(seq 240); do curl -sf 127.0.0.1:$port/healthz >/dev/null && break; sleep 0.5; done
  set -- $kind
  cpu0=$(awk '{print $14+$15}' /proc/$pid/stat)
  result=$($BIN bench load --target http://127.0.0.1:$port --mix $1 --rate $2 --duration 20 "${call[@]}" --json 2>/dev/null | tail -1)
  cpu1=$(awk '{print $14+$15}' /proc/$pid/stat)
  echo "$round $variant $1 rate $2 cpu-us/request $(( (cpu1-cpu0)*10000/($2*20) )) $(echo "$result" | python3 -c 'import json,sys; k=list(json.load(sys.stdin)["kinds"].values())[0]; print("p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f err %.4f" % (k["p50_ms"],k["p90_ms"],k["p99_ms"],k["p999_ms"],k["error_rate"]))') load $(cut -d' ' -f1 /proc/loadavg)"
  kill $pid; wait $pid 2>/dev/null; rm -rf /tmp/ba-$port
done; done; done
