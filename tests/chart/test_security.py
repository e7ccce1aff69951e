"""The chart's security settings (SECURITY.md): hardened containers everywhere, Redis password and TLS, mTLS,
authorization, JWT, rate limits and the shutdown drain, as rendered."""

import pytest

from tests.chart.helm import CHART, VALUES_FILES, by_kind, redis_secret, rejection, render

pytestmark = pytest.mark.chart
SECURITY = CHART / "ci" / "security-values.yaml"
HARDENED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def containers(objects: list[dict]):
    for obj in objects:
        if obj["kind"] == "InferenceService":
            # a shadow InferenceService has no transformer; collocated, both containers are the predictor's
            for component in ("predictor", "transformer"):
                for container in obj["spec"].get(component, {}).get("containers", []):
                    yield f"{obj['metadata']['name']}/{component}", container
        elif obj["kind"] in ("StatefulSet", "Pod"):
            pod = obj["spec"]["template"]["spec"] if obj["kind"] == "StatefulSet" else obj["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                yield f"{obj['metadata']['name']}/{container['name']}", container


@pytest.mark.parametrize("values", VALUES_FILES, ids=["default" if v is None else v.name for v in VALUES_FILES])
def test_every_container_runs_hardened(values):
    found = list(containers(render(values)))
    assert len(found) >= 3
    for name, container in found:
        context = container.get("securityContext", {})
        assert {key: context.get(key) for key in HARDENED} == HARDENED, name


def env_of(isvc: dict, component: str) -> dict:
    return {e["name"]: e.get("value") for e in isvc["spec"][component]["containers"][0].get("env", [])}


def test_defaults_drain_on_shutdown_and_leave_rate_limits_and_jwt_off():
    objects = render()
    for isvc in by_kind(objects, "InferenceService"):
        assert env_of(isvc, "predictor")["PREDICTOR_SHUTDOWN_DRAIN_S"] == "5"
        transformer = env_of(isvc, "transformer")
        assert transformer["TRANSFORMER_SHUTDOWN_DRAIN_S"] == "5"
        assert not {"TRANSFORMER_RATE_LIMIT_RPS", "TRANSFORMER_RATE_LIMIT_BURST", "TRANSFORMER_RATE_LIMIT_KEY"} & set(transformer)
    assert not by_kind(objects, "RequestAuthentication")
    assert by_kind(objects, "PeerAuthentication")[0]["spec"]["mtls"]["mode"] == "STRICT"
    secret = redis_secret(objects)["stringData"]
    assert len(secret["password"]) >= 32 and secret["url"].startswith(f"redis://tc:{secret['password']}@")
    redis = by_kind(objects, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]
    # the password and the ACL as configuration on stdin (tests/integration/test_redis_acl.py runs it)
    assert "user tc on >$(cat /run/secrets/redis/password) ~tc:* +get +mget +set +ping" in redis["args"][0]
    assert "--requirepass" not in redis["args"][0] and "tls-port" not in redis["args"][0]


def test_security_scenario_renders_tls_jwt_and_rate_limits():
    objects = render(SECURITY)
    secret = redis_secret(objects)["stringData"]
    assert secret["url"].startswith("rediss://tc:") and secret["url"].endswith("?ssl_ca_certs=/run/secrets/redis-ca/ca.crt")
    redis = by_kind(objects, "StatefulSet")[0]["spec"]["template"]["spec"]
    args = redis["containers"][0]["args"][0]
    assert "port 0\ntls-port 6379" in args and "tls-cert-file /run/secrets/redis-tls/tls.crt" in args
    assert "--tls" in redis["containers"][0]["readinessProbe"]["exec"]["command"][2]
    assert {"name": "tls", "secret": {"secretName": "text-classifier-redis-tls"}} in redis["volumes"]
    for isvc in by_kind(objects, "InferenceService"):
        name = isvc["metadata"]["name"]
        transformer = isvc["spec"]["transformer"]
        assert {"name": "redis-ca", "mountPath": "/run/secrets/redis-ca", "readOnly": True} in \
            transformer["containers"][0]["volumeMounts"]
        assert transformer["volumes"][-1]["secret"]["secretName"] == "text-classifier-redis-tls"
        env = env_of(isvc, "transformer")
        # istio.jwt is on: the key is the verified claim's header (tests/chart/test_rate_limit_key.py)
        assert (env["TRANSFORMER_RATE_LIMIT_RPS"], env["TRANSFORMER_RATE_LIMIT_BURST"], env["TRANSFORMER_RATE_LIMIT_KEY"]) == ("10", "20",
                                                                                         "x-tc-verified-client")
        selector = {"serving.kserve.io/inferenceservice": name, "app.kubernetes.io/component": "transformer"}
        jwt = next(o for o in by_kind(objects, "RequestAuthentication") if o["metadata"]["name"].endswith(f"{name}-jwt"))
        assert jwt["spec"]["selector"]["matchLabels"] == selector
        assert jwt["spec"]["jwtRules"] == [{"issuer": "https://auth.example.com/", "audiences": ["text-classifier"],
                                            "jwksUri": "https://auth.example.com/.well-known/jwks.json",
                                            "outputClaimToHeaders": [{"header": "x-tc-verified-client", "claim": "sub"}]}]
        deny = next(o for o in by_kind(objects, "AuthorizationPolicy") if o["metadata"]["name"].endswith("require-jwt")
                    and o["spec"]["selector"]["matchLabels"] == selector)
        assert deny["spec"]["action"] == "DENY"
        assert deny["spec"]["rules"][0]["from"] == [{"source": {"notRequestPrincipals": ["*"]}}]
        assert "/v2/health/ready" in deny["spec"]["rules"][0]["to"][0]["operation"]["notPaths"]


@pytest.mark.parametrize("sets, message", [
    (["redis.tls.enabled=true"], "set redis.tls.secretName"),
    (["istio.jwt.enabled=true"], "set issuer and jwksUri"),
    (["transformer.rateLimit.rps=0"], "rps"),
    (["istio.jwt.jwksUri=http://insecure"], "jwksUri"),
    # the helm test's request through a JWT-guarded route needs a token, or it fails after every install
    (["istio.jwt.enabled=true", "istio.jwt.issuer=https://a/", "istio.jwt.jwksUri=https://a/jwks"], "helmTest.tokenSecret"),
])
def test_incomplete_security_values_are_rejected(sets, message):
    stderr = rejection(*sets)
    assert message in stderr, stderr


def test_prod_requires_a_token_for_its_audience_and_limits_every_client():
    objects = render(CHART / "values-prod.yaml")
    rules = [rule for auth in by_kind(objects, "RequestAuthentication") for rule in auth["spec"]["jwtRules"]]
    assert rules and all(rule["audiences"] == ["text-classifier"] for rule in rules)
    assert by_kind(objects, "AuthorizationPolicy")
    for isvc in by_kind(objects, "InferenceService"):
        env = {e["name"]: e.get("value") for e in isvc["spec"]["transformer"]["containers"][0]["env"]}
        assert env["TRANSFORMER_RATE_LIMIT_RPS"] and env["TRANSFORMER_RATE_LIMIT_KEY"] == "x-tc-verified-client"  # the verified sub


def transformer_env_items(isvc: dict) -> dict:
    return {e["name"]: e for e in isvc["spec"]["transformer"]["containers"][0]["env"]}


@pytest.mark.parametrize("values", VALUES_FILES, ids=["default" if v is None else v.name for v in VALUES_FILES])
def test_every_transformer_keys_the_cache_with_a_secret_and_its_release_and_hides_cache_headers(values):
    """Issue 26, item 8: every values file (values-prod.yaml included) leaves x-cache and its kin off at the
    edge, and every transformer gets the keyed hash's secret from a Secret and its release in the key prefix."""
    objects = render(values)
    isvcs = [i for i in by_kind(objects, "InferenceService") if "transformer" in i["spec"]]
    collocated = [i for i in by_kind(objects, "InferenceService") if len(i["spec"]["predictor"].get("containers", [])) > 1]
    envs = [transformer_env_items(i) for i in isvcs] + [
        {e["name"]: e for e in i["spec"]["predictor"]["containers"][1]["env"]} for i in collocated]
    assert envs
    for env in envs:
        assert env["TRANSFORMER_CACHE_HEADERS"]["value"] == "false"
        assert env["TRANSFORMER_CACHE_KEY_RELEASE"]["value"] == "demo"
        assert env["TRANSFORMER_CACHE_KEY_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "demo-cache-key", "key": "key"}
    key = next(s for s in by_kind(objects, "Secret") if s["metadata"]["name"] == "demo-cache-key")
    assert len(key["stringData"]["key"]) >= 32


def test_the_cache_key_may_be_given_or_held_in_an_existing_secret():
    given = render(None, "transformer.cacheKey.secret=chosen-by-the-operator")
    key = next(s for s in by_kind(given, "Secret") if s["metadata"]["name"] == "demo-cache-key")
    assert key["stringData"]["key"] == "chosen-by-the-operator"
    existing = render(None, "transformer.cacheKey.existingSecret=kept-elsewhere")
    assert not [s for s in by_kind(existing, "Secret") if s["metadata"]["name"] == "demo-cache-key"]
    for isvc in by_kind(existing, "InferenceService"):
        ref = transformer_env_items(isvc)["TRANSFORMER_CACHE_KEY_SECRET"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "kept-elsewhere", "key": "key"}
