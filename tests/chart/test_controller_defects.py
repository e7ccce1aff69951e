"""What KServe v0.20, Knative Serving v1.21 and the EKS add-ons do with the rendered chart.

Each test replays, in a few lines of Python, the upstream function it names (at the version
cluster/versions.env pins) on the rendered objects, and checks what a user would meet on a
cluster: a pod that stays alive, a pin that ends with the canary, credentials that reach S3.
Istio's authorization (defect 3) is in test_hop_chain.py; Standard mode in test_standard_mode.py.
"""

import copy
import json

import pytest
import yaml

from bench import planner
from rollout.analysis import PROMOTE
from rollout.verdict import patch_command
from tests.chart.helm import CHART, ROOT, VALUES_FILES, by_kind, render

pytestmark = pytest.mark.chart
IDS = ["default" if v is None else v.name for v in VALUES_FILES]
GRPC = CHART / "ci" / "grpc-sentiment-only-values.yaml"


def isvcs(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in by_kind(objects, "InferenceService")}


def rewrite_user_liveness_probe(probe: dict, user_port: int) -> dict:
    """knative/serving v1.21.1 pkg/reconciler/revision/resources/deploy.go, rewriteUserLivenessProbe:
    an httpGet or tcpSocket liveness probe is sent to the serving port, whatever port it names."""
    probe = copy.deepcopy(probe)
    for handler in ("httpGet", "tcpSocket"):
        if handler in probe:
            probe[handler]["port"] = user_port
    return probe


@pytest.mark.parametrize("values", [None, GRPC], ids=["rest", "grpc"])
def test_the_liveness_probe_the_kubelet_runs_speaks_the_serving_ports_protocol(values):
    # Defect 1: in gRPC mode the one port is h2c 8081; an httpGet liveness probe rewritten to it
    # sends HTTP/1.1 GETs to the gRPC server, fails, and the kubelet restarts the pod forever.
    for isvc in isvcs(render(values)).values():
        (container,) = isvc["spec"]["predictor"]["containers"]
        (port,) = container["ports"]  # Knative: one port (k8s_validation.go validateContainersPorts)
        probe = rewrite_user_liveness_probe(container["livenessProbe"], port["containerPort"])
        if port["name"] == "h2c":
            assert "httpGet" not in probe and probe["tcpSocket"]["port"] == 8081
        else:
            assert probe["httpGet"]["port"] == 8080 and port["name"] == "http1"


def kserve_pod_labels(isvc: dict, component: str) -> dict:
    """kserve v0.20.0 pkg/controller/v1beta1/inferenceservice/components/predictor.go (and transformer.go),
    buildObjectMeta: the ISVC's labels, then the component's, then the ISVC name and component=<component>
    over them; a collocated transformer-container lives in the predictor's pod, so its pod is component=predictor."""
    return {**isvc["metadata"].get("labels", {}), **isvc["spec"][component].get("labels", {}),
            "serving.kserve.io/inferenceservice": isvc["metadata"]["name"], "component": component}


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_collocated_pods_keep_jwt_redis_access_and_their_scrape_label():
    # Defect 4: the policies selected component=transformer, which a collocated pod never has.
    objects = render(CHART / "ci" / "security-values.yaml", "transformer.collocated=true", "networkPolicy.enabled=true",
                     "monitoring.podMonitor.enabled=true")
    for name, isvc in isvcs(objects).items():
        assert "transformer" not in isvc["spec"]
        pod = kserve_pod_labels(isvc, "predictor")
        for kind in ("RequestAuthentication", "AuthorizationPolicy"):
            mine = [o for o in by_kind(objects, kind) if o["metadata"]["namespace"] == "text"
                    and o["spec"]["selector"]["matchLabels"].get("serving.kserve.io/inferenceservice") == name]
            assert mine and all(selects(o["spec"]["selector"]["matchLabels"], pod) for o in mine)
    (policy,) = by_kind(objects, "NetworkPolicy")
    assert all(selects(policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"], kserve_pod_labels(i, "predictor"))
               for i in isvcs(objects).values())
    # the PodMonitor's relabelling: the pod's kserve-container 8080 is the transformer-container's port
    (monitor,) = by_kind(objects, "PodMonitor")
    relabel = [r for r in monitor["spec"]["podMetricsEndpoints"][0]["relabelings"] if r.get("targetLabel") == "component"]
    assert relabel[-1]["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]
    assert relabel[-1]["regex"] == "transformer" and relabel[-1]["replacement"] == "transformer"


def test_eks_enforces_the_network_policy():
    # Defect 5: the Amazon VPC CNI add-on runs its network policy agent only with enableNetworkPolicy
    # (eksctl addon configurationValues, the aws-vpc-cni chart's enableNetworkPolicy value); otherwise a
    # NetworkPolicy is stored and ignored.
    cluster = yaml.safe_load((ROOT / "cluster" / "eksctl-cluster.yaml").read_text())
    (cni,) = [a for a in cluster.get("addons", []) if a["name"] == "vpc-cni"]
    assert json.loads(cni["configurationValues"])["enableNetworkPolicy"] == "true"


# knative/serving v1.21.1 pkg/apis/config/features.go: every flag of config-features
KNATIVE_FEATURE_KEYS = {
    "kubernetes.containerspec-addcapabilities", "kubernetes.podspec-affinity", "kubernetes.podspec-dnsconfig",
    "kubernetes.podspec-dnspolicy", "kubernetes.podspec-fieldref", "kubernetes.podspec-hostaliases",
    "kubernetes.podspec-hostipc", "kubernetes.podspec-hostnetwork", "kubernetes.podspec-hostpid",
    "kubernetes.podspec-init-containers", "kubernetes.podspec-nodeselector", "kubernetes.podspec-persistent-volume-claim",
    "kubernetes.podspec-persistent-volume-write", "kubernetes.podspec-priorityclassname",
    "kubernetes.podspec-runtimeclassname", "kubernetes.podspec-schedulername", "kubernetes.podspec-securitycontext",
    "kubernetes.podspec-shareprocessnamespace", "kubernetes.podspec-tolerations",
    "kubernetes.podspec-topologyspreadconstraints", "kubernetes.podspec-volumes-csi", "kubernetes.podspec-volumes-emptydir",
    "kubernetes.podspec-volumes-hostpath", "kubernetes.podspec-volumes-image", "kubernetes.podspec-volumes-mount-propagation",
    "multi-container", "multi-container-probing", "queueproxy.mount-podinfo", "queueproxy.resource-defaults",
    "secure-pod-defaults", "tag-header-based-routing",
}
# the pod fields the chart may render and the flag that lets Knative's webhook accept each
# (knative/serving v1.21.1 pkg/apis/serving/k8s_validation.go, PodSpecMask / EnvVarSourceMask)
POD_FIELD_FLAGS = {"affinity": "kubernetes.podspec-affinity", "tolerations": "kubernetes.podspec-tolerations",
                   "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
                   "securityContext": "kubernetes.podspec-securitycontext"}


def knative_config() -> dict:
    return yaml.safe_load((ROOT / "cluster" / "knative-serving.yaml").read_text())["spec"]["config"]


def test_knative_skips_tag_resolution_for_our_registry_and_knows_every_flag_we_set():
    # Defect 6: pkg/reconciler/revision/resolve.go (v1.21.1), Resolve: registriesToSkip.Has(
    # tag.Registry.RegistryStr()) compares the whole registry host, never a suffix.
    config = knative_config()
    skipped = set(config["deployment"]["registries-skipping-tag-resolving"].split(","))
    registry = yaml.safe_load((CHART / "values.yaml").read_text())["image"]["registry"].split("/")[0]
    assert registry in skipped
    assert set(config["features"]) <= KNATIVE_FEATURE_KEYS, "a key Knative does not read is silently ignored"


def test_knative_accepts_the_pod_fields_placement_and_the_pin_render():
    flags = {key for key, value in knative_config()["features"].items() if value == "enabled"}
    objects = render(CHART / "ci" / "canary-values.yaml", "placement.enabled=true")
    for isvc in isvcs(objects).values():
        for component in ("predictor", "transformer"):
            spec = isvc["spec"][component]
            assert {POD_FIELD_FLAGS[f] for f in POD_FIELD_FLAGS if f in spec and f != "securityContext"} <= flags
            env = [e for c in spec["containers"] for e in c.get("env", [])]
            if any("fieldRef" in e.get("valueFrom", {}) for e in env):
                assert "kubernetes.podspec-fieldref" in flags


def test_a_predictor_with_a_storage_uri_runs_as_the_irsa_account():
    # Defect 8: kserve v0.20.0 pkg/webhook/admission/pod/storage_initializer_injector.go,
    # CommonStorageInitialization: the storage initializer's credentials are built from
    # params.PodSpec.ServiceAccountName (CreateSecretVolumeAndEnv); on EKS that account's IAM role (IRSA).
    cluster = yaml.safe_load((ROOT / "cluster" / "eksctl-cluster.yaml").read_text())
    (account,) = cluster["iam"]["serviceAccounts"]
    objects = render(None, "models.sentiment.storageUri=s3://example-text-classifier-models/sentiment",
                     namespace=account["metadata"]["namespace"])
    predictors = {name: isvc["spec"]["predictor"] for name, isvc in isvcs(objects).items()}
    assert predictors["sentiment"]["serviceAccountName"] == account["metadata"]["name"]
    assert "serviceAccountName" not in predictors["emotion"]  # baked in: no bucket access needed


def kserve_knative_annotations(spec: dict) -> dict:
    """kserve v0.20.0 pkg/controller/v1beta1/inferenceservice/reconcilers/knative/ksvc_reconciler.go,
    createKnativeService, calls pkg/controller/v1alpha1/utils/utils.go SetAutoScalingAnnotations on the
    component's annotations: class kpa unless set, autoscaling.knative.dev/target = scaleTarget and
    autoscaling.knative.dev/metric = scaleMetric as given (no mapping; pkg/apis/serving/v1beta1
    inference_service_validation.go validateScalingKPACompExtension admits concurrency and rps
    (constants.AutoscalerAllowedKPAMetricsList), an rps target of 1 at least), min-scale, max-scale unless 0."""
    annotations = {"autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev", **spec.get("annotations", {})}
    if "scaleTarget" in spec:
        annotations["autoscaling.knative.dev/target"] = str(int(spec["scaleTarget"]))
    if "scaleMetric" in spec:
        metric = spec["scaleMetric"]
        assert metric in ("concurrency", "rps"), f"KServe's webhook rejects scaleMetric {metric} for the KPA"
        assert metric != "rps" or spec.get("scaleTarget", 1) >= 1, "the target for rps should be greater than 1"
        annotations["autoscaling.knative.dev/metric"] = metric
    annotations["autoscaling.knative.dev/min-scale"] = str(spec.get("minReplicas", 1))
    if spec.get("maxReplicas", 0):
        annotations["autoscaling.knative.dev/max-scale"] = str(spec["maxReplicas"])
    return annotations


def resolve_metric_target(annotations: dict, container_concurrency: int = 0) -> tuple[str, float]:
    """knative/serving v1.21.1 pkg/reconciler/autoscaling/resources/target.go, ResolveMetricTarget, on the
    revision's annotations: the metric (concurrency when unset), the total (the target annotation; for
    concurrency the smaller of it and a nonzero containerConcurrency) times the utilization: the
    annotation target-utilization-percentage, else config-autoscaler's default 0.7, for rps
    (target-utilization) as for concurrency (container-concurrency-target-percentage)
    (pkg/autoscaler/config/config.go defaultTargetUtilization)."""
    metric = annotations.get("autoscaling.knative.dev/metric", "concurrency")
    total = float(annotations["autoscaling.knative.dev/target"])
    if metric == "concurrency" and container_concurrency:
        total = min(total, container_concurrency)
    utilization = float(annotations.get("autoscaling.knative.dev/target-utilization-percentage", 70)) / 100
    return metric, max(0.01, total * utilization)


def kserve_custom_container_args(args: list[str], container_concurrency: int | None) -> list[str]:
    """kserve v0.20.0 pkg/apis/serving/v1beta1/transformer_custom.go, GetContainer: appends
    --workers <containerConcurrency> unless an arg starts with --workers (pkg/utils IncludesArg)."""
    if not any(a == "--workers" or a.startswith("--workers") for a in args) and container_concurrency is not None:
        return [*args, "--workers", str(container_concurrency)]
    return args


def test_knative_autoscaling_is_what_the_values_say():
    # Defect 9.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for isvc in isvcs(render()).values():
        for component in ("predictor", "transformer"):
            spec = isvc["spec"][component]
            # the target is scaleTarget, not 70% of it
            annotations = kserve_knative_annotations(spec)
            assert resolve_metric_target(annotations, spec["containerConcurrency"])[1] == spec["scaleTarget"]
            # the activator leaves the path once a pod runs (target burst capacity 0)
            assert spec["annotations"]["autoscaling.knative.dev/target-burst-capacity"] == "0"
        transformer = isvc["spec"]["transformer"]
        args = kserve_custom_container_args(transformer["containers"][0]["args"], transformer["containerConcurrency"])
        assert "--workers" not in args and "--workers=1" in args
        deadline = int(next(a for a in args if a.startswith("--predictor_request_timeout_seconds=")).split("=")[1])
        # a cold start on a new node: EKS node scale-up (~1-2 min) + image pull + model load
        assert deadline >= 120
        assert deadline < transformer["timeout"] and deadline <= isvc["spec"]["predictor"]["timeout"]
        assert values["transformer"]["timeout"] == transformer["timeout"]



@pytest.mark.parametrize(("values", "sets", "predictor"), [
    (None, (), ("rps", "scaleTargetRps")),  # the default: latency grows with load (docs/capacity.md)
    (None, ("predictor.scaleMetric=concurrency",), ("concurrency", "scaleTarget")),
    (CHART / "values-gpu.yaml", (), ("concurrency", "scaleTarget")),  # flat latency: in flight has a fixed point
], ids=["default", "concurrency", "gpu"])
def test_the_predictor_scales_on_the_metric_the_values_name(values, sets, predictor):
    # Issue 27: on concurrency the simulated KPA cycled on this predictor (4,236 SLO-miss seconds and
    # 49,244 cold starts a simulated day), on rps it held (20 and 59): the Knative autoscaler must see rps
    # with predictor.scaleTargetRps per pod, and the transformer (flat latency) stay on concurrency.
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())["predictor"]
    if values is not None:
        chart_values |= yaml.safe_load(values.read_text())["predictor"]
    metric, key = predictor
    for isvc in isvcs(render(values, *sets)).values():
        spec = isvc["spec"]["predictor"]
        annotations = kserve_knative_annotations(spec)
        assert annotations["autoscaling.knative.dev/metric"] == metric
        assert resolve_metric_target(annotations, spec["containerConcurrency"]) == (metric, chart_values[key])
        assert spec["containerConcurrency"] > 0  # the hard cap stays whatever the metric
        transformer = kserve_knative_annotations(isvc["spec"]["transformer"])
        assert resolve_metric_target(transformer)[0] == "concurrency"


def test_the_rps_target_is_the_planners_per_pod_capacity_within_the_slo_times_its_utilization():
    # bench/capacity.py sets the simulated rps KPA's target so; a new curve that moves it fails here
    curves = json.loads((ROOT / "bench" / "capacity" / "curves.json").read_text())
    target = planner.predictor_capacity(curves["predictor"], planner.Traffic(1.0).p99_slo_ms) * planner.UTILIZATION
    assert yaml.safe_load((CHART / "values.yaml").read_text())["predictor"]["scaleTargetRps"] == int(target)


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (kubectl patch --type merge)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def cache_pin(isvc: dict) -> str | None:
    """The transformer's CACHE_MODEL_VERSION as its pod sees it. KServe copies the ISVC's annotations to
    the component's pods (kserve v0.20.0 components/transformer.go Reconcile, knative/ksvc_reconciler.go
    createKnativeService: template annotations); the kubelet resolves a missing annotation to ""."""
    env = {e["name"]: e for e in isvc["spec"]["transformer"]["containers"][0]["env"]}
    if "CACHE_MODEL_VERSION" not in env:
        return None
    item = env["CACHE_MODEL_VERSION"]
    if "value" in item:
        return item["value"]
    path = item["valueFrom"]["fieldRef"]["fieldPath"]
    key = path[len("metadata.annotations['"):-2]
    return isvc["metadata"].get("annotations", {}).get(key, "")


def test_a_promotion_by_patch_leaves_no_stale_cache_pin():
    # Defect 10: the transformer is not canaried; a pin that survives the promotion keeps serving the
    # old model's cached answers.
    (isvc,) = [i for i in isvcs(render(CHART / "ci" / "canary-values.yaml")).values() if i["metadata"]["name"] == "sentiment"]
    assert cache_pin(isvc) == "sentiment-0.1.0"  # while the canary runs: the primary's entries only
    body = json.loads(patch_command("kubectl", "text", "sentiment", PROMOTE)[-1])
    promoted = merge_patch(isvc, body)
    assert promoted["spec"]["predictor"]["canaryTrafficPercent"] == 100
    assert not cache_pin(promoted)  # "" or absent: the transformer follows the version the predictor reports
