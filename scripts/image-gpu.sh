#!/usr/bin/env bash
# `make image-gpu`: the GPU predictor image (predictor/Dockerfile, target gpu) of the bundled
# sentiment model, or MODEL_SRC, built like `make images` builds the others: air-gapped by default
# (OFFLINE=1: the Debian-built base image, wheelhouse/ from scripts/wheelhouse.sh, --network=none),
# plus PyPI's CUDA build of torch and its nvidia-* wheels in wheelhouse/cuda/ (2.7 GB, fetched once
# on the host). Not part of `make images` or CI: the image is ~6.4 GB (docs/gpu.md).
# Named like the chart's GPU profile expects: $REGISTRY/predictor:sentiment-$VERSION-gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
registry=${REGISTRY:-localhost/kserve-text-classifier}
version=${VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)}
base=${PYTHON_IMAGE:-localhost/debian-python:3.11-bookworm}
model_src=${MODEL_SRC:-predictor/bundled/sentiment}
engine=scripts/engine.sh
"$engine" --name >/dev/null

build_args=(--build-arg "PYTHON_IMAGE=$base" --build-arg "MODEL_SRC=$model_src")
if [ "${OFFLINE:-1}" = 1 ]; then
  [ "$base" != localhost/debian-python:3.11-bookworm ] || bash scripts/build-base-image.sh "$base"
  bash scripts/wheelhouse.sh "$base"
  # PyPI's default index, not the CPU one: the Linux torch wheel there is the CUDA build. Not hash-checked:
  # the locks hash the CPU build only (SECURITY.md, supply chain). wheelhouse/.constraints.txt: wheelhouse.sh's.
  if ! ls wheelhouse/cuda/torch-2.13.0-*.whl >/dev/null 2>&1; then
    target=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311)
    for glibc in $(seq 39 -1 17); do target+=(--platform "manylinux_2_${glibc}_x86_64"); done
    "${PYTHON:-python3}" -m pip download --quiet --disable-pip-version-check --dest wheelhouse/cuda "${target[@]}" \
      --platform manylinux2014_x86_64 --index-url "${CUDA_INDEX_URL:-https://pypi.org/simple}" -c wheelhouse/.constraints.txt \
      torch==2.13.0
  fi
  build_args+=(--build-arg PIP_NO_INDEX=1 --network=none)
fi
image="$registry/predictor:$(basename "$model_src")-$version-gpu"
"$engine" build "${build_args[@]}" -f predictor/Dockerfile --target gpu -t "$image" .
echo "image-gpu: $image, $(( $("$engine" image inspect --format '{{.Size}}' "$image") / 1000000 )) MB"
