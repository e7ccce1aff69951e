#!/usr/bin/env bash
# Installs everything the text classifier needs on a Kubernetes cluster (EKS from
# cluster/eksctl-cluster.yaml), in dependency order. Idempotent: every step is a
# `helm upgrade --install` or a `kubectl apply`, so it can be rerun after a failure.
#
#   cluster/install.sh [dev|staging|prod]      (default dev; picks charts/text-classifier/values-<env>.yaml)
#   DEPLOYMENT_MODE=Standard cluster/install.sh prod   (KServe's Standard mode: no Knative; KEDA
#                                                       when AUTOSCALER=keda; docs/deployment-modes.md)
#
# Our chart goes in with Helm v4's --rollback-on-failure --wait: an upgrade whose objects do
# not all become ready within the timeout (an InferenceService that never turns Ready, say)
# is rolled back to the last good release by Helm itself, and the script fails. Then
# `helm test` sends one real inference per model and checks the answer; a failed test
# rolls back too (docs/deployment-modes.md, "Upgrade and rollback", shows both).
#
# Needs kubectl and helm v4 (make setup puts pinned ones in .venv/bin) and a kube context.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=cluster/versions.env
source "$here/versions.env"
env_name=${1:-dev}
namespace=${NAMESPACE:-text-classifier}
mode=${DEPLOYMENT_MODE:-Knative}
autoscaler=${AUTOSCALER:-hpa}
case "$mode" in Knative|Standard) ;; *) echo "install: DEPLOYMENT_MODE is Knative or Standard, not $mode" >&2; exit 1 ;; esac
case "$autoscaler" in hpa|keda) ;; *) echo "install: AUTOSCALER is hpa or keda, not $autoscaler" >&2; exit 1 ;; esac
helm version --template '{{.Version}}' | grep -q '^v4\.' || { echo "install: needs Helm v4 (--rollback-on-failure)" >&2; exit 1; }
values="$root/charts/text-classifier/values-$env_name.yaml"
[ -f "$values" ] || { echo "install: no $values" >&2; exit 1; }

step() { printf '\n==> %s\n' "$*"; }

step "cert-manager $CERT_MANAGER_VERSION (KServe's webhook certificates)"
helm upgrade --install cert-manager cert-manager --repo https://charts.jetstack.io \
  --version "$CERT_MANAGER_VERSION" --namespace cert-manager --create-namespace \
  --set crds.enabled=true --wait

step "Istio $ISTIO_VERSION: base, istiod, ingress gateway"
istio_repo=https://istio-release.storage.googleapis.com/charts
helm upgrade --install istio-base base --repo "$istio_repo" --version "$ISTIO_VERSION" \
  --namespace istio-system --create-namespace --wait
helm upgrade --install istiod istiod --repo "$istio_repo" --version "$ISTIO_VERSION" \
  --namespace istio-system --wait
helm upgrade --install istio-ingressgateway gateway --repo "$istio_repo" --version "$ISTIO_VERSION" \
  --namespace istio-system --set labels.istio=ingressgateway --wait
kubectl apply -f - <<'YAML'
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: istio
spec:
  controller: istio.io/ingress-controller
YAML

if [ "$mode" = Knative ]; then
  step "Knative Operator $KNATIVE_OPERATOR_VERSION and Knative Serving $KNATIVE_SERVING_VERSION"
  helm upgrade --install knative-operator knative-operator --repo https://knative.github.io/operator \
    --version "$KNATIVE_OPERATOR_VERSION" --namespace knative-operator --create-namespace --wait
  kubectl create namespace knative-serving --dry-run=client -o yaml | kubectl apply -f -
  kubectl label namespace knative-serving istio-injection=enabled --overwrite
  kubectl apply -f "$here/knative-serving.yaml"
  kubectl wait --for=condition=Ready knativeserving/knative-serving -n knative-serving --timeout=600s
elif [ "$autoscaler" = keda ]; then
  step "KEDA $KEDA_VERSION (Standard mode's autoscaler on the batcher's queue)"
  helm upgrade --install keda keda --repo https://kedacore.github.io/charts \
    --version "$KEDA_VERSION" --namespace keda --create-namespace --wait
fi

step "KServe $KSERVE_VERSION ($mode mode)"
helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd \
  --version "$KSERVE_VERSION" --namespace kserve --create-namespace --wait
helm upgrade --install kserve-resources oci://ghcr.io/kserve/charts/kserve-resources \
  --version "$KSERVE_VERSION" --namespace kserve \
  --set kserve.controller.deploymentMode="$mode" --wait

step "NVIDIA device plugin $NVIDIA_DEVICE_PLUGIN_VERSION (nvidia.com/gpu on the gpu node group; docs/gpu.md)"
# Its chart's defaults fit the gpu node group (cluster/eksctl-cluster.yaml): the DaemonSet's node
# affinity asks for nvidia.com/gpu.present=true, which that group's nodes carry, and it tolerates
# the nvidia.com/gpu taint. Harmless while the group is scaled to zero.
helm upgrade --install nvidia-device-plugin nvidia-device-plugin --repo https://nvidia.github.io/k8s-device-plugin \
  --version "$NVIDIA_DEVICE_PLUGIN_VERSION" --namespace nvidia-device-plugin --create-namespace --wait

step "DCGM exporter $DCGM_EXPORTER_VERSION (GPU utilisation and memory for the dashboard and the GPU-idle alert)"
# Its ServiceMonitor (where the Prometheus Operator is installed) keeps the exporter's own pod and
# namespace labels, which name the pod using each GPU: the chart's GPU panels and alert join on them.
service_monitor=false
if kubectl get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then service_monitor=true; fi
helm upgrade --install dcgm-exporter dcgm-exporter --repo https://nvidia.github.io/dcgm-exporter/helm-charts \
  --version "$DCGM_EXPORTER_VERSION" --namespace nvidia-device-plugin \
  --set-string nodeSelector.accelerator=nvidia \
  --set 'tolerations[0].key=nvidia.com/gpu' --set 'tolerations[0].operator=Exists' \
  --set 'tolerations[0].effect=NoSchedule' \
  --set "serviceMonitor.enabled=$service_monitor" --set serviceMonitor.honorLabels=true --wait

step "text-classifier ($env_name) in namespace $namespace"
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace "$namespace" istio-injection=enabled --overwrite
# --rollback-on-failure: a release that is not ready in 15 minutes goes back to the last good
# one (Helm v4; it implies --wait=watcher, which waits on the InferenceServices' Ready too).
helm upgrade --install text-classifier "$root/charts/text-classifier" --namespace "$namespace" \
  -f "$values" --set deploymentMode="$mode" --set standard.autoscalerClass="$autoscaler" \
  --rollback-on-failure --wait=watcher --timeout 15m
if ! helm test text-classifier --namespace "$namespace" --timeout 10m --logs; then
  # ready is not right: the models answer wrongly through the route. Back to the last good release.
  previous=$(helm history text-classifier --namespace "$namespace" --max 2 -o json \
    | python3 -c 'import json,sys; h=json.load(sys.stdin); print(h[0]["revision"] if len(h) > 1 else "")')
  if [ -n "$previous" ]; then
    echo "install: helm test failed: rolling back to revision $previous" >&2
    helm rollback text-classifier "$previous" --namespace "$namespace" --wait=watcher --timeout 15m
  fi
  exit 1
fi
