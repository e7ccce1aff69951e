#!/usr/bin/env bash
# `make images`: builds the predictor images (the bundled sentiment and emotion models, and
# MODEL_SRC when given), the torch variant of the sentiment predictor and the transformer,
# with whichever of docker/podman is present (scripts/engine.sh), then prints each size.
#
# Air-gapped by default (OFFLINE=1): the Python base image comes from Debian packages
# (scripts/build-base-image.sh), the wheels from wheelhouse/ (scripts/wheelhouse.sh, run on
# the host), and every build step runs with --network=none. OFFLINE=0 with
# PYTHON_IMAGE=python:3.11.7-slim-bookworm builds the way a machine with Docker Hub and PyPI does.
#
# Names follow the chart's values with image.registry=$REGISTRY: $REGISTRY/predictor:sentiment-$VERSION,
# $REGISTRY/predictor:emotion-$VERSION, $REGISTRY/predictor:sentiment-$VERSION-torch, $REGISTRY/transformer:$VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
registry=${REGISTRY:-localhost/kserve-text-classifier}
version=${VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)}
base=${PYTHON_IMAGE:-localhost/debian-python:3.11-bookworm}
offline=${OFFLINE:-1}
engine=scripts/engine.sh
"$engine" --name >/dev/null

build_args=(--build-arg "PYTHON_IMAGE=$base")
if [ "$offline" = 1 ]; then
  [ "$base" != localhost/debian-python:3.11-bookworm ] || bash scripts/build-base-image.sh "$base"
  bash scripts/wheelhouse.sh "$base"
  build_args+=(--build-arg PIP_NO_INDEX=1 --network=none)
fi

built=()
build() {  # build IMAGE DOCKERFILE [ARGS...]
  local image=$1 dockerfile=$2
  shift 2
  local started=$SECONDS
  echo "images: building $image"
  "$engine" build "${build_args[@]}" -f "$dockerfile" -t "$image" "$@" .
  echo "images: $image built in $((SECONDS - started)) s"
  built+=("$image")
}

build "$registry/predictor:sentiment-$version" predictor/Dockerfile
build "$registry/predictor:emotion-$version" predictor/Dockerfile --build-arg MODEL_SRC=predictor/bundled/emotion
if [ -n "${MODEL_SRC:-}" ]; then
  build "$registry/predictor:$(basename "$MODEL_SRC")-$version" predictor/Dockerfile --build-arg "MODEL_SRC=$MODEL_SRC"
fi
[ "${TORCH:-1}" = 0 ] || build "$registry/predictor:sentiment-$version-torch" predictor/Dockerfile --target torch
build "$registry/transformer:$version" transformer/Dockerfile

echo
printf '%-70s %10s\n' IMAGE 'SIZE (MB)'
for image in "$base" "${built[@]}"; do
  printf '%-70s %10d\n' "$image" "$(( $("$engine" image inspect --format '{{.Size}}' "$image") / 1000000 ))"
done
