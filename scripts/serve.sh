#!/usr/bin/env bash
# `make serve`: the whole local stack on the offline default model.
#   Redis       REDIS_URL (redis://127.0.0.1:6379/0); our own redis-server is started when none answers
#   predictor   PREDICTOR_HTTP_PORT 8090, PREDICTOR_GRPC_PORT 8091 (direct access, no cache)
#   transformer HTTP_PORT 8080, GRPC_PORT 8081: the front door, with the per-text cache
#               with x-cache on (CACHE_HEADERS=false turns it off, as the chart has it), and the public
#               development cache key (it warns; CACHE_KEY_SECRET sets a real one)
# MODEL_NAME picks a bundled model (sentiment, emotion); MODEL_DIR serves another model directory.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
HTTP_PORT=${HTTP_PORT:-8080}
GRPC_PORT=${GRPC_PORT:-8081}
PREDICTOR_HTTP_PORT=${PREDICTOR_HTTP_PORT:-8090}
PREDICTOR_GRPC_PORT=${PREDICTOR_GRPC_PORT:-8091}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
MODEL_NAME=${MODEL_NAME:-sentiment}
export CACHE_HEADERS=${CACHE_HEADERS:-true}  # a local caller may see its cache outcomes
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "serve: stopped"
}
trap cleanup INT TERM EXIT

wait_ready() {  # name url pid
  for _ in $(seq 1 480); do
    if curl -sf "$2" >/dev/null; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then echo "serve: the $1 exited; see its log above" >&2; exit 1; fi
    sleep 0.25
  done
  echo "serve: the $1 was not ready after 120 s" >&2
  exit 1
}

redis_answers() { "$PY" -c 'import sys, redis; redis.Redis.from_url(sys.argv[1], socket_timeout=1).ping()' "$REDIS_URL" 2>/dev/null; }

redis_note="using the Redis already answering at $REDIS_URL"
if ! redis_answers; then
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get install -y -qq redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
    else
      echo "serve: no Redis answers at $REDIS_URL and redis-server is not installed (apt-get install redis-server)" >&2
      exit 1
    fi
  fi
  redis_port=$("$PY" -c 'import sys, urllib.parse as u; print(u.urlparse(sys.argv[1]).port or 6379)' "$REDIS_URL")
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning &
  pids+=($!)
  for _ in $(seq 1 40); do redis_answers && break; sleep 0.25; done
  redis_answers || { echo "serve: could not start redis-server on port $redis_port" >&2; exit 1; }
  redis_note="started our own redis-server on port $redis_port"
fi

predictor_args=(--model_name "$MODEL_NAME")
if [ -n "${MODEL_DIR:-}" ]; then predictor_args+=(--model_dir "$MODEL_DIR"); fi
"$PY" -m predictor "${predictor_args[@]}" --http_port "$PREDICTOR_HTTP_PORT" --grpc_port "$PREDICTOR_GRPC_PORT" &
pids+=($!)
wait_ready predictor "http://127.0.0.1:$PREDICTOR_HTTP_PORT/v2/health/ready" "${pids[-1]}"

"$PY" -m transformer --model_name "$MODEL_NAME" --predictor_host "127.0.0.1:$PREDICTOR_HTTP_PORT" \
  --predictor_protocol v2 --redis_url "$REDIS_URL" --http_port "$HTTP_PORT" --grpc_port "$GRPC_PORT" &
pids+=($!)
wait_ready transformer "http://127.0.0.1:$HTTP_PORT/v2/health/ready" "${pids[-1]}"

cat <<MSG

================================================================================
 Serving "$MODEL_NAME" (${MODEL_DIR:-the bundled model predictor/bundled/$MODEL_NAME})
   through the transformer + Redis cache:
     V1 REST   http://127.0.0.1:$HTTP_PORT/v1/models/$MODEL_NAME:predict
     V2 REST   http://127.0.0.1:$HTTP_PORT/v2/models/$MODEL_NAME/infer
     V2 gRPC   127.0.0.1:$GRPC_PORT
   the predictor directly (no cache): http://127.0.0.1:$PREDICTOR_HTTP_PORT, gRPC 127.0.0.1:$PREDICTOR_GRPC_PORT
   Redis: $redis_note
 Try:
   curl -s http://127.0.0.1:$HTTP_PORT/v1/models/$MODEL_NAME:predict -d '{"instances": ["I love this"]}'
 Ctrl-C stops everything.
================================================================================
MSG
wait -n
