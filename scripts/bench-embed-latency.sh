#!/usr/bin/env bash
# One query embedded inside a node: starts `inkling serve` on a fresh data folder (default
# e5 encoder, demo catalog, any serve flags given), sends N distinct Home Depot queries one
# at a time as hybrid searches, and prints the encoder's mean batch time from /metrics
# (inkling_model_inference_seconds) and the requests' median.
#   scripts/bench-embed-latency.sh [N] [serve flags...]
# Environment: BIN (default target/release/inkling).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-target/release/inkling}
source scripts/bench-node.sh
COUNT=${1:-60}
shift $(($# > 0 ? 1 : 0))
PORT=19711
TARGET=http://127.0.0.1:$PORT
start_node $PORT "$@"
encoder_totals() { curl -s "$TARGET/metrics" | awk '/^inkling_model_inference_seconds_sum/ {s=$2} /^inkling_model_inference_seconds_count/ {c=$2} END {print s, c}'; }
read -r sum_before count_before < <(encoder_totals)
tail -n +200 ../shared/data/homedepot/queries.tsv | head -n "$COUNT" | cut -f2 |
    python3 -c 'import json,sys; [print(json.dumps({"user_id":"probe","query":q.strip(),"k":10,"mode":"hybrid"})) for q in sys.stdin]' |
    while read -r body; do
        curl -s -o /dev/null -w '%{time_total}\n' -H 'content-type: application/json' -d "$body" "$TARGET/v1/search"
    done >"$DATA/request-times"
read -r sum_after count_after < <(encoder_totals)
awk -v s="$sum_before" -v S="$sum_after" -v c="$count_before" -v C="$count_after" \
    'BEGIN {printf "encoder batches %d, mean %.1f ms\n", C - c, 1000 * (S - s) / (C - c)}'
sort -n "$DATA/request-times" | awk '{t[NR]=$1} END {printf "search request p50 %.1f ms\n", 1000 * t[int((NR+1)/2)]}'
stop_node
