#!/usr/bin/env bash
# Removes what cluster/install.sh installed, in reverse order. Idempotent: missing
# releases are skipped. The EKS cluster itself: eksctl delete cluster -f cluster/eksctl-cluster.yaml
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
namespace=${NAMESPACE:-text-classifier}

uninstall() {  # release namespace
  if helm status "$1" --namespace "$2" >/dev/null 2>&1; then
    helm uninstall "$1" --namespace "$2" --wait
  else
    echo "uninstall: $1 is not installed in $2"
  fi
}

uninstall text-classifier "$namespace"
uninstall kserve-resources kserve
uninstall kserve-crd kserve
kubectl delete -f "$here/knative-serving.yaml" --ignore-not-found --wait
uninstall knative-operator knative-operator
kubectl delete ingressclass istio --ignore-not-found
uninstall istio-ingressgateway istio-system
uninstall istiod istio-system
uninstall istio-base istio-system
uninstall cert-manager cert-manager
