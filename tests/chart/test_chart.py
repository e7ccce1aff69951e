"""The Helm chart: lint --strict, render every values file, validate every object, reject bad values."""

import re

import pytest
import yaml

from tests.chart.helm import CHART, VALUES_FILES, by_kind, helm, redis_secret, rejection, render
from tests.chart.schemas import CRD_DIR, validate

pytestmark = pytest.mark.chart
IDS = ["default" if v is None else v.name for v in VALUES_FILES]
needs_crds = pytest.mark.skipif(not CRD_DIR.is_dir(), reason=f"{CRD_DIR} is absent: the CRD schemas live there")


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_lint_strict(values):
    helm("lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))


@needs_crds
@pytest.mark.parametrize("mode", ["Knative", "Standard"])
@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_every_rendered_object_validates_against_its_schema(values, mode):
    objects = render(values, f"deploymentMode={mode}")
    assert {"InferenceService", "PeerAuthentication", "Secret"} <= {o["kind"] for o in objects}
    for isvc in by_kind(objects, "InferenceService"):
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
    for obj in objects:
        validate(obj)


def test_environments_differ_where_they_should():
    dev, prod = render(CHART / "values-dev.yaml"), render(CHART / "values-prod.yaml")
    for isvc in by_kind(dev, "InferenceService"):
        assert isvc["spec"]["predictor"]["minReplicas"] == 0 and isvc["spec"]["transformer"]["minReplicas"] == 0
    for isvc in by_kind(prod, "InferenceService"):
        assert isvc["spec"]["predictor"]["minReplicas"] == 2
    assert by_kind(prod, "Gateway")[0]["spec"]["servers"][0]["tls"]["credentialName"] == "text-prod-tls"
    assert by_kind(prod, "PeerAuthentication")[0]["spec"]["mtls"]["mode"] == "STRICT"


def test_routing_security_and_redis_wiring():
    objects = render()
    routes = by_kind(objects, "VirtualService")[0]["spec"]["http"]
    assert {r["name"] for r in routes} == {"sentiment", "emotion"}  # which paths: tests/chart/test_routes.py
    assert {r["rewrite"]["authority"] for r in routes} == {"sentiment.text.svc.cluster.local",
                                                           "emotion.text.svc.cluster.local"}
    policy = by_kind(objects, "NetworkPolicy")[0]["spec"]
    assert policy["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "transformer"}}}]
    secret = redis_secret(objects)["stringData"]
    assert secret["url"].startswith("redis://tc:" + secret["password"] + "@demo-redis.text.svc.cluster.local")
    for isvc in by_kind(objects, "InferenceService"):
        env = {e["name"]: e for e in isvc["spec"]["transformer"]["containers"][0]["env"]}
        assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "demo-redis", "key": "url"}
    # per model: its transformer's callers and its predictor's; the activator's and local gateway's guards
    assert len(by_kind(objects, "AuthorizationPolicy")) == 2 * 2 + 2
    tests = [p for p in by_kind(objects, "Pod") if p["metadata"]["annotations"]["helm.sh/hook"] == "test"]
    assert len(tests) == 2 and all("/v2/models/" in p["spec"]["containers"][0]["args"][0] for p in tests)


def test_external_redis_has_no_redis_workload():
    objects = render(CHART / "ci" / "external-redis-values.yaml")
    assert not by_kind(objects, "StatefulSet") and not by_kind(objects, "NetworkPolicy")
    assert redis_secret(objects)["stringData"]["url"].startswith("rediss://")


@pytest.mark.parametrize(
    "sets, message",
    [
        (["predictor.minReplica=1"], "additional properties 'minReplica' not allowed"),
        (["predictor.minReplicas=-1"], "minimum"),
        (["transformer.predictorProtocol=v1"], "v2"),
        (["istio.mtlsMode=DISABLE"], "STRICT"),
        (["models.sentiment.canary.trafficPercent=150"], "maximum"),
        (["redis.enabled=false"], "set redis.external.url or redis.existingSecret"),
        (["models.sentiment.canary.enabled=true"], "set image and modelVersion"),
        (["models.sentiment.shadow.enabled=true"], "set image and modelVersion to shadow-score"),
        (["models.sentiment.shadow.enabled=true", "models.sentiment.shadow.image=p:2",
          "models.sentiment.shadow.modelVersion=sentiment-0.1.0"], "shadow.modelVersion must differ"),
        (["models.sentiment.shadow.percent=101"], "maximum"),
        (["models.sentiment.enabled=false", "models.emotion.enabled=false"], "enable at least one model"),
        (["predictor.minReplicas=5"], "minReplicas must not exceed maxReplicas"),
        # a token minted for another service of the same issuer must not pass (tests/chart/test_security.py
        # checks the audiences rendered into every RequestAuthentication)
        (["istio.jwt.enabled=true", "istio.jwt.issuer=https://auth.example.com/",
          "istio.jwt.jwksUri=https://auth.example.com/jwks", "helmTest.enabled=false"], "istio.jwt: set audiences"),
    ],
)
def test_bad_values_are_rejected_with_a_message(sets, message):
    stderr = rejection(*sets)
    assert message in stderr, stderr


def test_all_validation_messages_come_at_once():
    stderr = rejection("redis.enabled=false", "models.sentiment.canary.enabled=true")
    assert "redis.external.url" in stderr and "models.sentiment.canary" in stderr


def _leaf_paths(node, prefix=""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in ("resources", "selector", "requests", "limits",
                                                                  "labels", "annotations"):
            yield from _leaf_paths(value, path + ".")
        else:
            yield path


def test_every_value_has_a_param_comment_and_a_schema_entry():
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"## @param (\S+)", text))
    leaves = set(_leaf_paths(yaml.safe_load(text)))
    assert leaves - documented == set(), "values without a ## @param comment"
    assert documented - leaves == set(), "## @param comments for values that do not exist"


def test_chart_readme_lists_every_parameter():
    documented = set(re.findall(r"## @param (\S+)", (CHART / "values.yaml").read_text()))
    readme = (CHART / "README.md").read_text()
    assert {key for key in documented if f"| `{key}` |" not in readme} == set()


def test_notes_say_how_to_call_every_model():
    notes = helm("install", "demo", str(CHART), "--namespace", "text", "--dry-run=client", "-f",
                 str(CHART / "ci" / "canary-values.yaml")).stdout.split("NOTES:", 1)[1]
    for name in ("sentiment", "emotion"):
        assert f"http://text.example.com/{name}/v1/models/{name}:predict" in notes
        assert f"http://{name}.text.svc.cluster.local/v2/models/{name}/infer" in notes
    assert "canary sentiment-0.2.0 at 10%" in notes and "helm test demo -n text" in notes


def test_a_shadow_is_a_predictor_only_inference_service_the_transformer_scores_on():
    objects = render(CHART / "ci" / "shadow-values.yaml")
    isvcs = {o["metadata"]["name"]: o for o in by_kind(objects, "InferenceService")}
    shadow = isvcs["sentiment-shadow"]["spec"]
    assert set(shadow) == {"predictor"} and shadow["predictor"]["minReplicas"] == 0  # scale-to-zero, no transformer
    args = shadow["predictor"]["containers"][0]["args"]
    assert "--model_name=sentiment" in args and "--model_version=sentiment-0.2.0" in args  # answers the same route
    assert shadow["predictor"]["containers"][0]["image"].endswith("/predictor:sentiment-0.2.0")
    assert "canaryTrafficPercent" not in shadow["predictor"]
    env = {e["name"]: e.get("value") for e in isvcs["sentiment"]["spec"]["transformer"]["containers"][0]["env"]}
    assert env["TRANSFORMER_SHADOW_PREDICTOR_HOST"] == "sentiment-shadow-predictor.text.svc.cluster.local:80"
    assert env["TRANSFORMER_SHADOW_PERCENT"] == "50" and env["TRANSFORMER_SHADOW_MAX_IN_FLIGHT"] == "8" and env["TRANSFORMER_SHADOW_TIMEOUT_MS"] == "1000"
    assert "TRANSFORMER_SHADOW_PREDICTOR_HOST" not in {e["name"] for e in isvcs["emotion"]["spec"]["transformer"]["containers"][0]["env"]}
    policies = {p["spec"]["selector"]["matchLabels"].get("serving.kserve.io/inferenceservice")
                for p in by_kind(objects, "AuthorizationPolicy") if p["metadata"]["namespace"] == "text"}
    assert policies == {"sentiment", "sentiment-shadow", "emotion"}
    monitored = render(CHART / "ci" / "shadow-values.yaml", "monitoring.podMonitor.enabled=true")
    (monitor,) = by_kind(monitored, "PodMonitor")
    selected = {e["key"]: e["values"] for e in monitor["spec"]["selector"]["matchExpressions"]}
    assert "sentiment-shadow" in selected["serving.kserve.io/inferenceservice"]


def _containers(isvc: dict) -> dict:
    return {part: isvc["spec"][part]["containers"][0] for part in ("predictor", "transformer")}


def test_an_external_redis_cluster_with_tls_and_auth():
    objects = render(CHART / "ci" / "redis-cluster-values.yaml")
    assert not by_kind(objects, "StatefulSet") and not by_kind(objects, "NetworkPolicy")
    url = redis_secret(objects)["stringData"]["url"]
    assert url == ("rediss://text-app:example-auth-token@clustercfg.text-cache.abc123.use1.cache.amazonaws.com:6379/0"
                   "?ssl_ca_certs=/run/secrets/redis-ca/ca.crt")  # the mounted CA verifies the cluster's certificate
    for isvc in by_kind(objects, "InferenceService"):
        transformer = isvc["spec"]["transformer"]
        env = {e["name"]: e.get("value") for e in transformer["containers"][0]["env"]}
        assert env["TRANSFORMER_REDIS_CLUSTER"] == "true"
        assert {"name": "redis-ca", "mountPath": "/run/secrets/redis-ca", "readOnly": True} in \
            transformer["containers"][0]["volumeMounts"]
        assert transformer["volumes"][-1]["secret"]["secretName"] == "text-cache-ca"


def test_tracing_is_off_by_default_and_sets_the_standard_otel_env_when_on():
    for isvc in by_kind(render(), "InferenceService"):
        for container in _containers(isvc).values():
            assert not [e for e in container["env"] if e["name"].startswith("OTEL_")]
            assert not [e for e in container["env"] if e["name"] == "TRANSFORMER_REDIS_CLUSTER"]
    for isvc in by_kind(render(CHART / "ci" / "redis-cluster-values.yaml"), "InferenceService"):
        name = isvc["metadata"]["name"]
        for part, container in _containers(isvc).items():
            env = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("OTEL_")}
            assert env == {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability.svc.cluster.local:4318",
                           "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.05",
                           "OTEL_SERVICE_NAME": f"{name}-{part}",
                           "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=demo,k8s.namespace.name=text"}


@pytest.mark.parametrize(
    "sets, message",
    [
        (["redis.external.cluster=true"], "the chart's own Redis is one node"),
        (["redis.external.caSecret=ca"], "redis.external.caSecret verifies an external Redis"),
        (["redis.enabled=false", "redis.external.url=redis://cache:6379/0", "redis.external.caSecret=ca"],
         "use a rediss:// URL"),
        (["redis.enabled=false", "redis.external.url=memcached://cache:11211"], "pattern"),
        (["tracing.samplingRatio=2"], "maximum"),
        (["tracing.endpoint=otel-collector:4318"], "pattern"),
    ],
)
def test_bad_cluster_and_tracing_values_are_rejected(sets, message):
    stderr = rejection(*sets)
    assert message in stderr, stderr
