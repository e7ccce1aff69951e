# shellcheck shell=sh
# `helm test`: one real inference through a model's public route, and its answer checked
# (templates/tests/test-v2-request.yaml sets URL, MODEL, VERSIONS, CONNECT_TO and TOKEN_FILE).
# POSIX sh: it runs in the curl image (busybox) and in tests/chart/test_helm_test.py.
set -eu
fail() { echo "helm test: $*" >&2; exit 1; }
connect=""
if [ -n "${CONNECT_TO:-}" ]; then connect="--connect-to $CONNECT_TO"; fi
token=""
if [ -n "${TOKEN_FILE:-}" ]; then token=$(cat "$TOKEN_FILE"); fi
# shellcheck disable=SC2086  # $connect is two words or none
answer=$(curl --silent --show-error --fail-with-body --max-time 120 --retry 5 --retry-all-errors \
  ${INSECURE:+--insecure} $connect ${token:+-H "authorization: Bearer $token"} -H 'content-type: application/json' \
  -d '{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["helm test: this is wonderful"]}]}' \
  "$URL/v2/models/$MODEL/infer") || fail "no answer from $URL: $answer"
echo "$answer"
case "$answer" in *"\"model_name\":\"$MODEL\""*) ;; *) fail "not an answer of $MODEL" ;; esac
version=$(echo "$answer" | sed -n 's/.*"model_version":"\([^"]*\)".*/\1/p')
case " $VERSIONS " in *" $version "*) ;; *) fail "model_version '$version' is none of: $VERSIONS" ;; esac
label=$(echo "$answer" | sed -n 's/.*"name":"label",[^}]*"data":\["\([^"]*\)".*/\1/p')
[ -n "$label" ] || fail "no label in the answer"
# the scores output names the model's labels (JSON-encoded): the label must be one of them
case "$answer" in *"\\\"$label\\\""*) ;; *) fail "label '$label' is not one of the model's labels" ;; esac
echo "helm test: $MODEL answered $label (model_version $version)"
