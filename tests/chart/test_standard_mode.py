"""deploymentMode=Standard: what KServe v0.20's raw-deployment reconcilers make of the rendered objects.

Each helper below replays the upstream function it names (kserve v0.20.0); the tests check
what a client or an operator meets: both protocols on a Service, an autoscaler KServe's
webhook accepts, a canary and a mirror that keep every route.
"""

import pytest
import yaml

from tests.chart.helm import CHART, ROOT, by_kind, render
from tests.chart.test_controller_defects import isvcs, kserve_pod_labels, selects

pytestmark = pytest.mark.chart
STANDARD = "deploymentMode=Standard"
GRPC = CHART / "ci" / "grpc-sentiment-only-values.yaml"


def kserve_raw_service_ports(containers: list[dict]) -> list[dict]:
    """pkg/controller/v1beta1/inferenceservice/reconcilers/service/service_reconciler.go, createService:
    the first container port becomes the Service's port 80, every further one keeps its number;
    a port whose name holds "grpc" or "h2c" gets appProtocol grpc (isGrpcPort, getAppProtocol)."""
    ports = [p for c in containers for p in c.get("ports", [])][:]
    first = next(c for c in containers if c.get("ports"))["ports"]
    service = [{"name": first[0]["name"], "port": 80, "targetPort": first[0]["containerPort"]}]
    service += [{"name": p["name"], "port": p["containerPort"], "targetPort": p["containerPort"]} for p in first[1:]]
    assert len(ports) == len(first), "KServe's Service takes the first container's ports only"
    for port in service:
        if "grpc" in port["name"] or "h2c" in port["name"]:
            port["appProtocol"] = "grpc"
    return service


@pytest.mark.parametrize("values", [None, GRPC], ids=["rest", "grpc"])
def test_every_component_serves_rest_and_grpc_on_its_service(values):
    # Defect 2: a Knative container may expose one port; a Deployment may expose both.
    for name, isvc in isvcs(render(values, STANDARD)).items():
        for component in ("predictor", "transformer"):
            service = kserve_raw_service_ports(isvc["spec"][component]["containers"])
            assert service == [{"name": "http", "port": 80, "targetPort": 8080},
                               {"name": "grpc", "port": 8081, "targetPort": 8081, "appProtocol": "grpc"}]
        args = isvc["spec"]["transformer"]["containers"][0]["args"]
        assert "--grpc_port=8081" in args  # the transformer's own gRPC server, for clients
        protocol_port = "8081" if values == GRPC else "80"
        assert f"--predictor_host={name}-predictor.text.svc.cluster.local:{protocol_port}" in args
        probes = isvc["spec"]["predictor"]["containers"][0]
        # no queue-proxy and no port rewriting: the kubelet probes the REST port as rendered
        assert probes["livenessProbe"]["httpGet"]["port"] == probes["readinessProbe"]["httpGet"]["port"] == 8080


def kserve_validates_autoscaling(annotations: dict, spec: dict) -> None:
    """pkg/apis/serving/v1beta1/inference_service_validation.go: validateScalingHPACompExtension and
    validateScalingKedaCompExtension, the parts the chart's values reach."""
    metrics = spec.get("autoScaling", {}).get("metrics", [])
    if annotations["serving.kserve.io/autoscalerClass"] == "hpa":
        assert all(m["type"] == "Resource" for m in metrics), "HPA takes Resource metrics only"
    else:
        assert "scaleMetric" not in spec, "ScaleMetric is not supported for KEDA"
        for metric in metrics:
            if metric["type"] == "Resource" and metric["resource"]["name"] == "cpu":
                assert metric["resource"]["target"]["type"] == "Utilization"
    for metric in metrics:
        if metric["type"] == "Resource":
            assert 1 <= metric["resource"]["target"]["averageUtilization"] <= 100


@pytest.mark.parametrize("autoscaler", ["hpa", "keda"])
def test_autoscaling_is_one_kserve_accepts_and_no_knative_field_is_left(autoscaler):
    for isvc in isvcs(render(None, STANDARD, f"standard.autoscalerClass={autoscaler}")).values():
        annotations = isvc["metadata"]["annotations"]
        assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
        assert not [k for k in annotations if k.startswith("autoscaling.knative.dev/")]
        for component in ("predictor", "transformer"):
            spec = isvc["spec"][component]
            assert spec["minReplicas"] >= 1  # an HPA never scales to zero
            assert not {"scaleMetric", "scaleTarget", "containerConcurrency", "canaryTrafficPercent"} & set(spec)
            assert not [k for k in spec.get("annotations", {}) if k.startswith("autoscaling.knative.dev/")]
            kserve_validates_autoscaling(annotations, spec)
        metrics = isvc["spec"]["predictor"]["autoScaling"]["metrics"]
        if autoscaler == "keda":
            # keda_reconciler.go getKedaMetrics: an External prometheus metric becomes a trigger with this
            # query and threshold; KEDA adds a pod per threshold of the summed queue
            (external,) = metrics
            query = external["external"]["metric"]["query"]
            assert query.startswith("sum(predictor_queue_texts{") and 'namespace="text"' in query
            assert f'isvc="{isvc["metadata"]["name"]}"' in query
            assert external["external"]["target"] == {"type": "Value", "value": "32"}
            # the series the query reads is one the predictor exports
            assert '"predictor_queue_texts"' in (ROOT / "predictor" / "metrics.py").read_text()
        else:
            assert {m["resource"]["name"] for m in metrics} == {"cpu", "memory"}


def test_the_canary_is_a_second_predictor_weighted_by_the_mesh():
    # kserve v0.20.0 inference_service_validation.go, validateCanarySpecs: spec.canary needs "a stable
    # predictor with a model" (a storageUri or a model format); ours is baked into a custom image, so the
    # chart renders the candidate as its own InferenceService and splits the transformer's calls by weight.
    objects = render(CHART / "ci" / "canary-values.yaml", STANDARD)
    found = isvcs(objects)
    canary = found["sentiment-canary"]["spec"]
    assert set(canary) == {"predictor"} and "canary" not in found["sentiment"]["spec"]
    assert "--model_name=sentiment" in canary["predictor"]["containers"][0]["args"]
    assert "--model_version=sentiment-0.2.0" in canary["predictor"]["containers"][0]["args"]
    assert "--model_version=sentiment-0.1.0" in found["sentiment"]["spec"]["predictor"]["containers"][0]["args"]
    monitored = render(CHART / "ci" / "canary-values.yaml", STANDARD, "monitoring.podMonitor.enabled=true")
    (monitor,) = by_kind(monitored, "PodMonitor")
    selected = {e["key"]: e["values"] for e in monitor["spec"]["selector"]["matchExpressions"]}
    assert "sentiment-canary" in selected["serving.kserve.io/inferenceservice"]  # scraped like the primary
    (split,) = [v for v in by_kind(objects, "VirtualService") if v["spec"].get("gateways") == ["mesh"]]
    assert split["spec"]["hosts"] == ["sentiment-predictor.text.svc.cluster.local"]
    for route in split["spec"]["http"]:
        weights = {d["destination"]["host"].split(".")[0]: d["weight"] for d in route["route"]}
        assert weights == {"sentiment-predictor": 90, "sentiment-canary-predictor": 10}
        assert {d["destination"]["port"]["number"] for d in route["route"]} == {route["match"][0]["port"]}


def test_disruption_budgets_and_placement_select_the_pods_kserve_makes():
    cluster = yaml.safe_load((ROOT / "cluster" / "eksctl-cluster.yaml").read_text())
    (spot,) = [g for g in cluster["managedNodeGroups"] if g.get("spot")]
    (on_demand,) = [g for g in cluster["managedNodeGroups"] if g["name"] == "on-demand"]  # not spot, not gpu
    for mode in ("Knative", "Standard"):
        objects = render(None, f"deploymentMode={mode}", "placement.enabled=true")
        budgets = by_kind(objects, "PodDisruptionBudget")
        for isvc in isvcs(objects).values():
            for component in ("predictor", "transformer"):
                pod = kserve_pod_labels(isvc, component)
                (budget,) = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], pod)]
                assert budget["spec"]["maxUnavailable"] == 1
                spec = isvc["spec"][component]
                for spread in spec["topologySpreadConstraints"]:
                    assert selects(spread["labelSelector"]["matchLabels"], pod)
                (toleration,) = spec["tolerations"]
                assert any(t["key"] == toleration["key"] and t["value"] == toleration["value"] for t in spot["taints"])
                preferred = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
                for expression in preferred[0]["preference"]["matchExpressions"]:
                    assert on_demand["labels"][expression["key"]] in expression["values"]


def test_users_reach_the_transformers_raw_service_and_a_mirror_keeps_every_route():
    # Defect 7: inferenceservices/shadow/istio-mirror.yaml replaced the chart's VirtualService (same name,
    # one route, a pinned host) and its target had no endpoints once the candidate idled.
    objects = render(CHART / "ci" / "shadow-values.yaml", STANDARD, "models.sentiment.shadow.via=mirror")
    (gateway_routes,) = [v for v in by_kind(objects, "VirtualService") if v["spec"].get("gateways") != ["mesh"]]
    routes = {r["name"]: r for r in gateway_routes["spec"]["http"]}
    assert set(routes) == {"sentiment", "emotion"} and gateway_routes["spec"]["hosts"] == ["text.example.com"]
    for name, route in routes.items():
        assert route["route"][0]["destination"]["host"] == f"{name}-transformer.text.svc.cluster.local"
    assert routes["sentiment"]["mirror"]["host"] == "sentiment-shadow-predictor.text.svc.cluster.local"
    assert routes["sentiment"]["mirrorPercentage"] == {"value": 50} and "mirror" not in routes["emotion"]
    assert isvcs(objects)["sentiment-shadow"]["spec"]["predictor"]["minReplicas"] >= 1
    for path in (ROOT / "inferenceservices").rglob("*.yaml"):
        assert all(doc.get("kind") != "VirtualService" for doc in yaml.safe_load_all(path.read_text()) if doc), path


def test_prod_values_name_the_mode_and_say_why():
    text = (CHART / "values-prod.yaml").read_text()
    mode = yaml.safe_load(text)["deploymentMode"]
    assert mode in ("Knative", "Standard") and "docs/deployment-modes.md" in text


@pytest.mark.parametrize("protocol, port", [("v2", "80"), ("grpc-v2", "8081")])
def test_the_shadow_is_called_on_the_port_of_the_transformers_protocol(protocol, port):
    found = isvcs(render(CHART / "ci" / "shadow-values.yaml", STANDARD, f"transformer.predictorProtocol={protocol}"))
    env = {e["name"]: e.get("value") for e in found["sentiment"]["spec"]["transformer"]["containers"][0]["env"]}
    assert env["TRANSFORMER_SHADOW_PREDICTOR_HOST"] == f"sentiment-shadow-predictor.text.svc.cluster.local:{port}"
    service = kserve_raw_service_ports(found["sentiment-shadow"]["spec"]["predictor"]["containers"])
    assert {p["port"]: p.get("appProtocol") for p in service}[int(port)] == (None if port == "80" else "grpc")
