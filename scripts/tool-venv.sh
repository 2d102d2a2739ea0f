#!/usr/bin/env bash
# Creates (once) a throwaway Python environment .deps/venv-NAME holding the pinned
# requirements given, for a test tool from PyPI; prints its bin folder.
#   scripts/tool-venv.sh NAME REQUIREMENT...
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="$1"
shift
VENV="$ROOT/.deps/venv-$NAME"
STAMP="$VENV/.complete-v1"
if [[ ! -f "$STAMP" ]]; then
    echo "installing $* into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    touch "$STAMP"
fi
echo "$VENV/bin"
