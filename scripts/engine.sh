#!/usr/bin/env bash
# Runs the container engine that is present (docker or podman; ENGINE=... picks one) with
# what this machine kind needs, so that `make images`, scripts/wheelhouse.sh and the image
# tests share one definition:
#   podman: Debian's runc as the OCI runtime (crun fails on hybrid cgroup hosts), and
#           ulimits at the current ones (podman's defaults exceed what such a host allows);
#   docker: BuildKit (the Dockerfiles use RUN --mount).
# Usage: scripts/engine.sh build|run|create ... (passed through to the engine)
#        scripts/engine.sh --name   prints the engine's name, or exits 1 when none can run here
set -euo pipefail
pick() {
  if [ -n "${ENGINE:-}" ]; then echo "$ENGINE"; return; fi
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker; return; fi
  if command -v podman >/dev/null && podman info >/dev/null 2>&1; then echo podman; return; fi
  return 1
}
engine=$(pick) || { echo "engine.sh: no container engine can run here (neither docker nor podman works)" >&2; exit 1; }
if [ "${1:-}" = --name ]; then echo "$engine"; exit 0; fi
if [ "$engine" = docker ]; then
  export DOCKER_BUILDKIT=1
  exec docker "$@"
fi
# At or below the shell's limits and modest: the sandbox above this shell may allow less
# than `ulimit` reports (runc then fails with "error setting rlimit").
limit() { local value; value=$(ulimit "$1"); [ "$value" = unlimited ] || [ "$value" -gt "$2" ] && value=$2; echo "$value"; }
global=()
if command -v runc >/dev/null; then global+=(--runtime "$(command -v runc)"); fi
case "${1:-}" in
  build|run|create)
    command=$1
    shift
    exec podman "${global[@]}" "$command" \
      --ulimit "nofile=$(limit -Sn 65536):$(limit -Sn 65536)" --ulimit "nproc=$(limit -Su 4096):$(limit -Su 4096)" "$@" ;;
  *) exec podman "${global[@]}" "$@" ;;
esac
