#!/usr/bin/env bash
# `make serve`: run the local stack on the offline default model, print how to call it,
# and stop everything on Ctrl-C. Ports: HTTP_PORT (8080) and GRPC_PORT (8081).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
HTTP_PORT=${HTTP_PORT:-8080}
GRPC_PORT=${GRPC_PORT:-8081}
MODEL_DIR=${MODEL_DIR:-.cache/models/demo-sentiment}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ ! -f "$MODEL_DIR/config.json" ]; then
  "$PY" -m predictor.demo_model "$MODEL_DIR"
fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

"$PY" -m predictor --model_name sentiment --model_dir "$MODEL_DIR" \
  --http_port "$HTTP_PORT" --grpc_port "$GRPC_PORT" &
pids+=($!)

for _ in $(seq 1 240); do
  if curl -sf "http://127.0.0.1:$HTTP_PORT/v2/health/ready" >/dev/null; then break; fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "serve: the predictor exited; see its log above" >&2; exit 1; fi
  sleep 0.5
done

cat <<MSG

================================================================================
 Serving model "sentiment" from $MODEL_DIR
   V1 REST   http://127.0.0.1:$HTTP_PORT/v1/models/sentiment:predict
   V2 REST   http://127.0.0.1:$HTTP_PORT/v2/models/sentiment/infer
   V2 gRPC   127.0.0.1:$GRPC_PORT
 Try:
   curl -s http://127.0.0.1:$HTTP_PORT/v1/models/sentiment:predict -d '{"instances": ["I love this"]}'
MSG
if [ "$MODEL_DIR" = ".cache/models/demo-sentiment" ]; then
  echo " WARNING: this is the DEMO model (random weights): its answers are NOT meaningful."
fi
echo " Ctrl-C stops everything."
echo "================================================================================"
wait
