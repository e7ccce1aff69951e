#!/usr/bin/env bash
# Fills wheelhouse/ on the host with every wheel the image builds install, for the images'
# platform (manylinux x86_64, glibc 2.36 = Debian bookworm) and Python (CPython 3.11), so
# that the builds install with `pip --no-index` and need no network inside the container.
# This is the air-gapped enterprise build: run it where PyPI (or the company's mirror,
# PIP_INDEX_URL) is reachable, carry wheelhouse/ with the checkout, build anywhere.
#
# Versions come from requirements.lock only. pip evaluates environment markers for the
# host's interpreter even with --python-version, so a dependency that only the image's
# Python needs (redis needs async-timeout below 3.11.3; Debian's python3 is 3.11.2) would
# be missing: the last step installs the whole set in the base image itself, offline,
# with --dry-run, and downloads whatever that interpreter asks for, until nothing is missing.
#
# Usage: scripts/wheelhouse.sh [BASE_IMAGE]   (default localhost/debian-python:3.11-bookworm)
# torch: a local CPU wheel found through pip's find-links, else PyTorch's CPU index (TORCH_INDEX_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-localhost/debian-python:3.11-bookworm}
out=wheelhouse
pip=("${PYTHON:-python3}" -m pip)
torch_index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
# pip does not expand manylinux_2_36 to the older glibc tags it implies: list them all.
target=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311)
for glibc in $(seq 36 -1 17); do target+=(--platform "manylinux_2_${glibc}_x86_64"); done
target+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
mkdir -p "$out"
# Every image's extra (pyproject.toml), as one list inside wheelhouse/ so that the image's own
# interpreter below reads it too (the checkout is mounted there).
"${PYTHON:-python3}" scripts/extra.py --without kserve base serve torch transformer build > "$out/.requirements.txt"
requirements=(-r "$out/.requirements.txt")
# The lock's pins without their hashes, as constraints (a hashed constraints file would turn pip's
# hash-checking mode on for these resolutions, whose requirement names carry no hashes); the hashes are
# checked at the end, on every file downloaded, and again by the images' installs (scripts/hashed_install.py).
"${PYTHON:-python3}" scripts/hashed_install.py --lock requirements.lock --lock requirements-torch.lock \
  --plain "$out/.constraints.txt"
lock=(-c "$out/.constraints.txt")

download() { "${pip[@]}" download --quiet --disable-pip-version-check --dest "$out" --find-links "$out" "${target[@]}" "$@"; }

if ! ls "$out"/torch-2.13.0*.whl >/dev/null 2>&1; then
  download --no-deps --no-index torch==2.13.0+cpu 2>/dev/null || download --no-deps --index-url "$torch_index" torch==2.13.0+cpu
fi
# Offline first: a wheelhouse filled before resolves from itself, without asking an index.
download --no-index --no-deps "${lock[@]}" kserve 2>/dev/null || download --no-deps "${lock[@]}" kserve
download --no-index "${lock[@]}" torch==2.13.0+cpu "${requirements[@]}" 2>/dev/null \
  || download "${lock[@]}" torch==2.13.0+cpu "${requirements[@]}"

# The image's own interpreter, offline: anything it still lacks is a marker the host's pip skipped.
for _ in 1 2 3 4 5; do
  report=$(scripts/engine.sh run --rm --network none -v "$PWD:/src:ro" -w /src "$image" sh -c '
      python -m venv /tmp/venv && /tmp/venv/bin/pip install --disable-pip-version-check --dry-run \
        --no-index --find-links /src/wheelhouse -c wheelhouse/.constraints.txt torch==2.13.0+cpu '"${requirements[*]}"' 2>&1' \
    || true)
  # pip says "No matching distribution found for X", or, when requirements.lock pins X,
  # "... depends on X>=..." under "The conflict is caused by".
  missing=$(printf '%s\n' "$report" | sed -n -e 's/.*No matching distribution found for \([A-Za-z0-9_.-]*\).*/\1/p' \
              -e 's/.* depends on \([A-Za-z0-9_.-]*\).*/\1/p' | head -1)
  if [ -z "$missing" ]; then
    if printf '%s\n' "$report" | grep -q ERROR; then printf '%s\n' "$report" >&2; exit 1; fi
    # every file carried is one the locks hash (the CUDA wheels of wheelhouse/cuda/ are not: docs/gpu.md)
    "${PYTHON:-python3}" scripts/hashed_install.py --lock requirements.lock --lock requirements-torch.lock \
      --check-dir "$out"
    echo "wheelhouse: $(find "$out" -name '*.whl' | wc -l) wheels, $(du -sh "$out" | cut -f1), complete for $image"
    exit 0
  fi
  echo "wheelhouse: $image's Python also needs $missing"
  download "${lock[@]}" "$missing"
done
echo "wheelhouse: still incomplete after 5 rounds:" >&2
printf '%s\n' "$report" >&2
exit 1
