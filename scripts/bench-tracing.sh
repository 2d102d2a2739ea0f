#!/usr/bin/env bash
# What tracing costs: the same open-loop load against a build without tracing (BEFORE), and
# against this build with tracing off and on (spans exported to scripts/otlp-sink.py), each
# on a fresh node, three rounds interleaved. Prints the node's CPU time per request (robust
# to other load on the machine) and the latency percentiles.
#   scripts/bench-tracing.sh /path/to/inkling-built-before-tracing
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BEFORE=${1:?usage: scripts/bench-tracing.sh BEFORE_BINARY}
NEW=target/release/inkling
python3 scripts/otlp-sink.py & SINK=$!
sleep 1
for round in 1 2 3; do
for kind in "recommend=1 500" "search=1 100"; do
for variant in before off on; do
  case $variant in
    before) bin=$BEFORE; extra=();;
    off) bin=$NEW; extra=();;
    on) bin=$NEW; extra=(--otlp-endpoint http://127.0.0.1:4318);;
  esac
  port=$((19100 + RANDOM % 500)); rm -rf /tmp/bt-$port
  $bin serve --listen 127.0.0.1:$port --model none --data-dir /tmp/bt-$port "${extra[@]}" >/dev/null 2>&1 &
  pid=$!
  for i in $(seq 120); do curl -sf 127.0.0.1:$port/healthz >/dev/null && break; sleep 0.5; done
  set -- $kind
  cpu0=$(awk '{print $14+$15}' /proc/$pid/stat)
  result=$($NEW bench load --target http://127.0.0.1:$port --mix $1 --rate $2 --duration 20 --json 2>/dev/null | tail -1)
  cpu1=$(awk '{print $14+$15}' /proc/$pid/stat)
  echo "$round $variant $1 cpu-us/request $(( (cpu1-cpu0)*10000/($2*20) )) $(echo "$result" | python3 -c 'import json,sys; k=list(json.load(sys.stdin)["kinds"].values())[0]; print("p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f err %.4f" % (k["p50_ms"],k["p90_ms"],k["p99_ms"],k["p999_ms"],k["error_rate"]))') load $(cut -d' ' -f1 /proc/loadavg)"
  kill $pid; wait $pid 2>/dev/null; rm -rf /tmp/bt-$port
done; done; done
echo "spans received by the sink: $(cat ${TMPDIR:-/tmp}/otlp-sink.count 2>/dev/null)"
kill $SINK
