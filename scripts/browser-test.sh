#!/usr/bin/env bash
# The demo storefront's end-to-end test: starts one `inkling serve` on the demo catalog with
# its default encoder (loopback, a fresh data folder) and drives the page at `/` in headless
# Chromium through playwright's Python driver (scripts/browser-test.py), in Chinese and in
# English. Installs what it needs: Debian's `chromium` and `fonts-wqy-microhei` packages
# when missing (through apt-get, as root or with sudo), and playwright from PyPI into
# .deps/ (it drives that Chromium; it downloads no browser).
#
#   scripts/browser-test.sh [screenshot folder (default target/browser-test)]
#
# BIN picks the binary (default target/debug/inkling, which `cargo test` builds).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/target/browser-test}"
BIN="${BIN:-$ROOT/target/debug/inkling}"
PORT="${PORT:-18766}"

# Debian's Chromium, and a Chinese font so the screenshots show the Chinese page.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
[[ -n "$(fc-list :lang=zh 2>/dev/null)" ]] || missing+=(fonts-wqy-microhei)
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || { echo "browser test: install ${missing[*]} (Debian packages)" >&2; exit 1; }
    echo "browser test: installing Debian's ${missing[*]}" >&2
    SUDO=(); [[ "$(id -u)" == 0 ]] || SUDO=(sudo)
    "${SUDO[@]}" apt-get install -y -q "${missing[@]}" >&2
fi
CHROMIUM="$(command -v chromium)"
TOOLS="$("$ROOT/scripts/tool-venv.sh" browser playwright==1.65.3)"
[[ -x "$BIN" ]] || { echo "browser test: $BIN is missing; build it first (cargo build --bin inkling)" >&2; exit 1; }

# shellcheck source=scripts/bench-node.sh
source "$ROOT/scripts/bench-node.sh"
start_node "$PORT"
trap stop_node EXIT
rm -rf "$OUT"
"$TOOLS/python" "$ROOT/scripts/browser-test.py" "http://127.0.0.1:$PORT" "$OUT" "$CHROMIUM"
