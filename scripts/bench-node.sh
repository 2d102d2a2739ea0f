# Sourced by the bench-*.sh scripts and the API's test scripts (fuzz-api.sh,
# browser-test.sh): one `$BIN serve` on a fresh data folder, on loopback.
#   start_node PORT [serve flags...]  starts it (on the demo catalog unless the flags name
#                                     another), waits until it is ready, and sets NODE (its
#                                     pid) and DATA (its folder; its log is $DATA.log)
#   stop_node                         stops it and removes its folder and log

start_node() {
    local port=$1
    shift
    DATA=$(mktemp -d "${TMPDIR:-/tmp}/inkling-bench.XXXXXX")
    case " $* " in *" --catalog "*) ;; *) set -- --catalog demo "$@" ;; esac
    "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$DATA" "$@" >"$DATA.log" 2>&1 &
    NODE=$!
    until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do
        kill -0 "$NODE" 2>/dev/null || { echo "the node exited; see $DATA.log" >&2; exit 1; }
        sleep 0.5
    done
}

stop_node() {
    kill "$NODE"
    wait "$NODE" 2>/dev/null
    rm -rf "$DATA" "$DATA.log"
}
