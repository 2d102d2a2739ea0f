#!/usr/bin/env bash
# Fuzzes the HTTP API against its own OpenAPI document: starts one `inkling serve` on the
# demo catalog with its default encoder (loopback, a fresh data folder, one admin API
# key), then runs schemathesis, from PyPI in a throwaway venv under .deps/, with that key
# on every route but drain (which would stop the node). Fails on any 5xx, any status the document does not list, and any
# answer that breaks its schema; input the schema forbids, a missing key included, must be
# refused with a 4xx.
#
#   scripts/fuzz-api.sh [examples per operation (default 40)]
#
# By default the cases are deterministic: every run sends the same ones, so CI sees what a
# local run saw. SEED=N explores instead, with random cases from that seed. BIN picks the
# binary (default target/debug/inkling, which `cargo test` builds); REPORT a folder for
# schemathesis's JUnit report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXAMPLES="${1:-40}"
BIN="${BIN:-$ROOT/target/debug/inkling}"
generation=(--generation-deterministic)
[[ -z "${SEED:-}" ]] || generation=(--seed "$SEED")
PORT="${PORT:-18765}"
TOOLS="$("$ROOT/scripts/tool-venv.sh" schemathesis schemathesis==4.32.5)"
[[ -x "$BIN" ]] || { echo "fuzz: $BIN is missing; build it first (cargo build --bin inkling)" >&2; exit 1; }

KEY_LINES="$("$BIN" cluster key --scope admin)"
KEY="$(sed -n 's/^key: //p' <<<"$KEY_LINES")"
ENTRY="$(sed -n 's/^--api-keys entry: //p' <<<"$KEY_LINES")"
# shellcheck source=scripts/bench-node.sh
source "$ROOT/scripts/bench-node.sh"
start_node "$PORT" --api-keys "$ENTRY"
trap stop_node EXIT

report=()
if [[ -n "${REPORT:-}" ]]; then
    mkdir -p "$REPORT"
    report=(--report junit --report-junit-path "$REPORT/schemathesis.xml")
fi
echo "fuzz: schemathesis, $EXAMPLES examples per operation, ${generation[*]}" >&2
"$TOOLS/schemathesis" run "http://127.0.0.1:$PORT/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
    --header "Authorization: Bearer $KEY" \
    --exclude-path /v1/admin/drain \
    --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" "${generation[@]}" \
    --request-timeout 30 --workers 1 --no-color \
    "${report[@]}"
if ! kill -0 "$NODE" 2>/dev/null; then
    echo "fuzz: the node died during the run; its log:" >&2
    tail -50 "$DATA.log" >&2
    exit 1
fi
