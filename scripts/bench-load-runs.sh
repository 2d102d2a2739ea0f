#!/usr/bin/env bash
# The load runs of docs/benchmarks.md beyond a single `bench load`: hybrid search on one node
# with CPU inference (`hybrid`), then a 3-node cluster with and without a node killed mid-run
# (`cluster`, at RATE requests/s). Compilers running on the machine are paused meanwhile.
#   cargo build --release --bin inkling && scripts/bench-load-runs.sh [hybrid|cluster|all]
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
B=target/release/inkling
pause() { pkill -STOP -x rustc; pkill -STOP -x cc; pkill -STOP -f 'rust-lld|/ld '; }
resume() { pkill -CONT -x rustc; pkill -CONT -x cc; pkill -CONT -f 'rust-lld|/ld '; }
trap resume EXIT
wait_up() { for i in $(seq 600); do curl -sf $1/healthz >/dev/null && return 0; sleep 0.5; done; return 1; }
metric() { curl -s $1/metrics | grep -E "$2" ; }
part=${1:-all}; RATE=${RATE:-650}
if [ $part = all ] || [ $part = hybrid ]; then
  rm -rf /tmp/bl-h; $B serve --listen 127.0.0.1:19501 --data-dir /tmp/bl-h >/dev/null 2>/tmp/bl-h.err & H=$!
  wait_up http://127.0.0.1:19501 || echo "hybrid node did not start"
  pause
  curl -s http://127.0.0.1:19501/metrics > /tmp/bl-h0
  echo "== hybrid, one node, multilingual-e5-small on CPU, find-max p99<=100ms"
  $B bench load --target http://127.0.0.1:19501 --mix search=1 --search-mode hybrid --find-max --rate 4 --p99-ms 100 --duration 20 2>&1 | tail -25
  resume
  curl -s http://127.0.0.1:19501/metrics > /tmp/bl-h1
  python3 scripts/histogram-delta.py /tmp/bl-h0 /tmp/bl-h1 inkling_model_batch_texts inkling_model_inference_seconds
  metric http://127.0.0.1:19501 'inkling_embedding_cache_lookups_total|inkling_model_batch_texts_(sum|count)|inkling_model_inference_seconds_(sum|count)|inkling_model_requests_rejected_total'
  kill $H; wait $H 2>/dev/null
fi
if [ $part = all ] || [ $part = cluster ]; then
  P=19600; rm -rf /tmp/bl-c
  $B cluster up --nodes 3 --port $P --data-dir /tmp/bl-c -- --model none >/tmp/bl-c.out 2>/tmp/bl-c.err & C=$!
  for n in 1 2 3; do wait_up http://127.0.0.$n:$P || echo "node $n did not start"; done
  sleep 5
  T=http://127.0.0.1:$P,http://127.0.0.2:$P
  pause
  echo "== 3 nodes, mixed at $RATE requests/s (events:recommend:search 20:5:1), 30 s, no fault (gateways 1 and 2)"
  curl -s http://127.0.0.1:$P/metrics > /tmp/bl-m0
  $B bench load --target $T --mix events=2000,recommend=500,search=100 --rate $RATE --duration 30 2>&1 | tail -8
  curl -s http://127.0.0.1:$P/metrics > /tmp/bl-m1
  python3 scripts/histogram-delta.py /tmp/bl-m0 /tmp/bl-m1 inkling_raft_commit_seconds inkling_storage_sync_seconds inkling_group_commit_waiters inkling_http_request_seconds
  echo "== 3 nodes, the same, node 3 killed with SIGKILL 10 s in"
  ( sleep 10; pkill -9 -f "listen 127.0.0.3:$P"; echo "killed node 3 at $(date +%T.%N)" ) &
  $B bench load --target $T --mix events=2000,recommend=500,search=100 --rate $RATE --duration 30 2>&1 | tail -8
  resume
  metric http://127.0.0.1:$P 'inkling_raft_leader_changes_total|inkling_cluster_live_members'
  kill $C; wait $C 2>/dev/null; pkill -f "bl-c/node" 
fi
