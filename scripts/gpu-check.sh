#!/usr/bin/env bash
# For a machine with an NVIDIA GPU (never needed by tests or CI):
#  1. installs full torch 2.13.0 with its CUDA dependencies into .deps/venv-cuda;
#  2. builds Inkling against that libtorch (separate target folder, so the CPU build stays);
#  3. checks GPU-versus-CPU parity of both encoders (cosine >= 0.999) and prints GPU
#     throughput by batch size (`inkling bench gpu`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh   # model weights
VENV="$ROOT/.deps/venv-cuda"
if [[ ! -f "$VENV/.complete-v1" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check torch==2.13.0
    touch "$VENV/.complete-v1"
fi
TORCH_DIR="$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
"$VENV/bin/python" -c 'import torch; print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())'

export LIBTORCH="$TORCH_DIR"
export CARGO_TARGET_DIR="$ROOT/target/cuda"
cargo build --release --bin inkling
"$CARGO_TARGET_DIR/release/inkling" bench gpu --models-dir "$ROOT/.deps/models" "$@"
