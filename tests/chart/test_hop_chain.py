"""Who can reach a predictor: every hop a request takes, under the rendered AuthorizationPolicies.

Defect 3: the predictor accepted any caller from istio-system and knative-serving, and every real
hop to it comes from there, so any pod could call <name>-predictor.<ns> and skip the
transformer's JWT check and rate limit. The hops, at the pinned versions:
- a sidecar's call to <name>-predictor.<ns> follows net-istio's mesh VirtualService
  (knative-extensions/net-istio v1.21 pkg/reconciler/ingress/resources/virtual_service.go,
  MakeMeshVirtualService) to the revision: its pods, or Knative's activator while it is in the
  path (at zero pods; target-burst-capacity 0 otherwise);
- the activator forwards with its own identity (config/core/deployments/activator.yaml:
  serviceAccountName activator), routed by Host or by the Knative-Serving-Revision and
  -Namespace headers (pkg/activator/activator.go);
- knative-local-gateway serves plain HTTP (no caller principal) and forwards to the revision;
- Standard mode has none of these: the transformer's sidecar calls the predictor's Service.
tests/chart/authz.py evaluates Istio 1.27's decision at each hop.
"""

import pytest

from tests.chart.authz import Request, Workload, allowed
from tests.chart.helm import CHART, by_kind, render

pytestmark = pytest.mark.chart
NS = "text"
TRANSFORMER = f"cluster.local/ns/{NS}/sa/demo-transformer"
ACTIVATOR = "cluster.local/ns/knative-serving/sa/activator"
INGRESS = "cluster.local/ns/istio-system/sa/istio-ingressgateway"
INTRUDERS = {"another namespace": "cluster.local/ns/other/sa/default",
             "this namespace": f"cluster.local/ns/{NS}/sa/default",
             "knative-serving": "cluster.local/ns/knative-serving/sa/default",
             "no sidecar": None}
PREDICTOR_POD = Workload(NS, {"serving.kserve.io/inferenceservice": "sentiment", "component": "predictor"})
ACTIVATOR_POD = Workload("knative-serving", {"app": "activator"})
LOCAL_GATEWAY_POD = Workload("istio-system", {"istio": "ingressgateway", "app": "istio-ingressgateway"})
TRANSFORMER_POD = Workload(NS, {"serving.kserve.io/inferenceservice": "sentiment", "component": "transformer",
                                "app.kubernetes.io/component": "transformer"})
HOSTS = ["sentiment-predictor.text", "sentiment-predictor.text.svc.cluster.local",
         "sentiment-predictor.text.svc.cluster.local:80", "sentiment-predictor.text:80"]


def policies(*sets):
    return by_kind(render(None, *sets, namespace=NS), "AuthorizationPolicy")


PROBE = {"K-Network-Probe": "probe", "K-Network-Hash": "override"}  # net-istio's status prober (networking pkg/status)


def reaches_predictor(rendered, caller: str | None, host: str, headers=None) -> bool:
    """Whether a call from ``caller`` for ``host`` gets the predictor's model server to answer, by any Knative hop."""
    headers = headers or {}
    if "K-Network-Probe" in headers:
        # answered by queue-proxy (knative.dev/pkg Drainer -> pkg/queue/health ProbeHandler) or by the activator
        # (pkg/activator/handler/probe_handler.go): never forwarded to the model server, whoever sends it
        return False
    # straight to the pods (the activator out of the path)
    direct = allowed(rendered, PREDICTOR_POD, Request(caller, host, 8012, headers=headers))
    # through the activator (at zero pods): it must let the call in, then the pod must let the activator in
    via_activator = (allowed(rendered, ACTIVATOR_POD, Request(caller, host, 8012, headers=headers))
                     and allowed(rendered, PREDICTOR_POD, Request(ACTIVATOR, host, 8012, headers=headers)))
    # through knative-local-gateway (plain HTTP: no principal reaches it), which forwards as itself
    via_gateway = (allowed(rendered, LOCAL_GATEWAY_POD, Request(None, host, 8081, headers=headers))
                   and allowed(rendered, PREDICTOR_POD, Request(INGRESS, host, 8012, headers=headers)))
    return direct or via_activator or via_gateway


@pytest.mark.parametrize("intruder", INTRUDERS, ids=list(INTRUDERS))
def test_knative_mode_no_hop_lets_another_caller_reach_the_predictor(intruder):
    rendered = policies()
    for host in HOSTS:
        assert not reaches_predictor(rendered, INTRUDERS[intruder], host), host
    # the activator's own routing headers, with any Host
    revision = {"Knative-Serving-Revision": "sentiment-predictor-00001", "Knative-Serving-Namespace": NS}
    assert not reaches_predictor(rendered, INTRUDERS[intruder], "anything.example.com", revision)


def test_knative_mode_the_transformer_reaches_its_predictor_by_each_hop_it_uses():
    rendered = policies()
    for host in HOSTS:
        assert allowed(rendered, PREDICTOR_POD, Request(TRANSFORMER, host, 8012))  # the activator out of the path
        assert allowed(rendered, ACTIVATOR_POD, Request(TRANSFORMER, host, 8012))  # at zero pods
        assert allowed(rendered, PREDICTOR_POD, Request(ACTIVATOR, host, 8012))
    # Knative's autoscaler scrapes queue-proxy's metrics ports
    assert allowed(rendered, PREDICTOR_POD, Request("cluster.local/ns/knative-serving/sa/controller", "10.0.0.1:9090", 9090))


def test_knative_mode_users_still_reach_the_transformer_through_the_gateways():
    rendered = policies()
    # the ingress gateway -> knative-local-gateway -> (activator) -> the transformer, as every route does
    transformer_host = "sentiment.text.svc.cluster.local"
    assert allowed(rendered, LOCAL_GATEWAY_POD, Request(None, transformer_host, 8081))
    assert allowed(rendered, ACTIVATOR_POD, Request(INGRESS, transformer_host, 8012,
                                                    headers={"Knative-Serving-Revision": "sentiment-transformer-00001",
                                                             "Knative-Serving-Namespace": NS}))
    for caller in (INGRESS, ACTIVATOR):
        assert allowed(rendered, TRANSFORMER_POD, Request(caller, transformer_host))
    assert not allowed(rendered, TRANSFORMER_POD, Request(INTRUDERS["another namespace"], transformer_host))


@pytest.mark.parametrize("intruder", INTRUDERS, ids=list(INTRUDERS))
def test_standard_mode_only_the_transformer_reaches_the_predictor(intruder):
    rendered = policies("deploymentMode=Standard")
    for port in (8080, 8081):  # REST and gRPC
        assert allowed(rendered, PREDICTOR_POD, Request(TRANSFORMER, "sentiment-predictor.text.svc.cluster.local", port))
        assert not allowed(rendered, PREDICTOR_POD, Request(INTRUDERS[intruder], "sentiment-predictor.text", port))
    assert allowed(rendered, TRANSFORMER_POD, Request(INGRESS, "sentiment-transformer.text.svc.cluster.local"))


def test_the_shadow_and_a_standard_canary_answer_the_transformer_only():
    shadow = by_kind(render(CHART / "ci" / "shadow-values.yaml", namespace=NS), "AuthorizationPolicy")
    canary = policies("deploymentMode=Standard", "models.sentiment.canary.enabled=true",
                      "models.sentiment.canary.image=p:2", "models.sentiment.canary.modelVersion=sentiment-0.2.0")
    for rendered, isvc in ((shadow, "sentiment-shadow"), (canary, "sentiment-canary")):
        pod = Workload(NS, {"serving.kserve.io/inferenceservice": isvc, "component": "predictor"})
        assert allowed(rendered, pod, Request(TRANSFORMER, f"{isvc}-predictor.text"))
        assert not allowed(rendered, pod, Request(INTRUDERS["another namespace"], f"{isvc}-predictor.text"))


def test_knatives_route_probes_pass_every_hop_and_never_reach_the_model():
    # net-istio marks the route Ready only once its status prober's request passes the local gateway to
    # the revision (networking pkg/ingress InsertProbe adds the K-Network-Hash route); a DENY on it would
    # leave every predictor's route, and so the InferenceService, never Ready.
    rendered = policies()
    for host in HOSTS:
        assert allowed(rendered, LOCAL_GATEWAY_POD, Request(None, host, 8081, headers=PROBE))
        assert allowed(rendered, ACTIVATOR_POD, Request(INGRESS, host, 8012, headers=PROBE))
        assert allowed(rendered, PREDICTOR_POD, Request(INGRESS, host, 8012, headers=PROBE))
        # an intruder who copies the probe header gets the probe's answer, not the model's
        assert not reaches_predictor(rendered, INTRUDERS["another namespace"], host, PROBE)
        # and it cannot go around queue-proxy to the model server's own ports with it
        for port in (8080, 8081):
            assert not allowed(rendered, PREDICTOR_POD, Request(INTRUDERS["another namespace"], host, port, headers=PROBE))
