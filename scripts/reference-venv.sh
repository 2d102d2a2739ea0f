#!/usr/bin/env bash
# Creates (once) the throwaway Python environment with sentence-transformers and torch that
# the encoder fixtures and the Python side of the encoder benchmark use. Prints its python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.deps/venv-reference"
STAMP="$VENV/.complete-v1"
if [[ ! -f "$STAMP" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check torch==2.13.0 sentence-transformers >&2
    touch "$STAMP"
fi
echo "$VENV/bin/python"
