#!/usr/bin/env bash
# The wheels a GPU machine without a package index needs to run `python -m bench.gpu`
# (docs/gpu.md): what `python -m predictor` imports and a stock CUDA PyTorch image lacks
# (KServe's model server and its web stack), for CPython 3.12 on manylinux x86_64, at
# requirements.lock's versions, without their dependencies (the image has numpy, torch,
# transformers, tokenizers, onnxruntime, aiohttp, httpx, prometheus-client, ...).
# Run it where PyPI is reachable; carry the folder; on the GPU machine:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl
#   PYTHONPATH=/tmp/site:images/placeholders python3 -m bench.gpu --out OUT
# images/placeholders stands in for kubernetes and pandas, which `import kserve` names (contract/requirements.txt).
#
# Usage: scripts/gpu-bench-wheels.sh [DIR] [PYTHON_VERSION]   (defaults: .whl, 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.whl}
python_version=${2:-3.12}
abi="cp${python_version/./}"
names=(kserve uvicorn httptools watchfiles fastapi starlette pydantic pydantic_core annotated-types typing-inspection
       grpcio grpc-interceptor protobuf orjson timing-asgi cloudevents deprecation pydantic-settings python-dotenv
       opentelemetry-api)  # fastapi imports opentelemetry at import time
pins=()
for name in "${names[@]}"; do
  pin=$(grep -i "^${name}==" requirements.lock | sed 's/ *\\$//') || { echo "requirements.lock pins no $name" >&2; exit 1; }
  pins+=("$pin")
done
target=(--only-binary=:all: --implementation cp --python-version "$python_version" --abi "$abi" --abi abi3 --abi none)
for glibc in $(seq 39 -1 17); do target+=(--platform "manylinux_2_${glibc}_x86_64"); done
target+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
mkdir -p "$out"
"${PYTHON:-python3}" -m pip download --quiet --disable-pip-version-check --no-deps --dest "$out" "${target[@]}" "${pins[@]}"
du -sh "$out"
