#!/usr/bin/env bash
# `make serve`: run the local stack on the offline default model, print how to call it,
# and stop everything on Ctrl-C. Ports: HTTP_PORT (8080) and GRPC_PORT (8081).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
HTTP_PORT=${HTTP_PORT:-8080}
GRPC_PORT=${GRPC_PORT:-8081}
MODEL_NAME=${MODEL_NAME:-sentiment}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Without MODEL_DIR the predictor serves the bundled model named MODEL_NAME
# (sentiment or emotion): its LoRA adapter is merged into the offline base once,
# then loaded from the cache (~/.cache/kserve-text-classifier).
model_args=(--model_name "$MODEL_NAME")
if [ -n "${MODEL_DIR:-}" ]; then model_args+=(--model_dir "$MODEL_DIR"); fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$PY" -m predictor "${model_args[@]}" --http_port "$HTTP_PORT" --grpc_port "$GRPC_PORT" &
pids+=($!)

for _ in $(seq 1 240); do
  if curl -sf "http://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null; then break; fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "serve: the predictor exited; see its log above" >&2; exit 1; fi
  sleep 0.5
done

cat <<MSG

================================================================================
 Serving model "$MODEL_NAME" from ${MODEL_DIR:-predictor/bundled/$MODEL_NAME}
   V1 REST   http://127.0.0.1:$HTTP_PORT/v1/models/$MODEL_NAME:predict
   V2 REST   http://127.0.0.1:$HTTP_PORT/v2/models/$MODEL_NAME/infer
   V2 gRPC   127.0.0.1:$GRPC_PORT
 Try:
   curl -s http://127.0.0.1:$HTTP_PORT/v1/models/$MODEL_NAME:predict -d '{"instances": ["I love this"]}'
MSG
echo " Ctrl-C stops everything."
echo "================================================================================"
wait
