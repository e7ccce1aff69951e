"""With istio.jwt on, the rate limit keys on a claim Istio verified, never on a client's own header.

Istio 1.27's RequestAuthentication copies a claim of a verified token to a header
(jwtRules[].outputClaimToHeaders; pilot/pkg/security/authn/policy_applier.go, convertToEnvoyJwtConfig:
Envoy jwt_authn's claim_to_headers);
the transformer keys its buckets on that header (RATE_LIMIT_KEY), and the gateway's route drops a
client's own copy of it (headers.request.remove, Envoy request_headers_to_remove,
pilot/pkg/networking/core/route/route.go TranslateHeadersOperations) before it reaches the pod.
"""

import pytest

from tests.chart.helm import CHART, by_kind, render
from tests.chart.routes import route_of

pytestmark = pytest.mark.chart

PROD = CHART / "values-prod.yaml"


def rate_limit_keys(objects):
    keys = {}
    for isvc in by_kind(objects, "InferenceService"):
        if "transformer" in isvc["spec"]:
            env = {e["name"]: e.get("value") for e in isvc["spec"]["transformer"]["containers"][0]["env"]}
            keys[isvc["metadata"]["name"]] = env.get("TRANSFORMER_RATE_LIMIT_KEY")
    return keys


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
def test_with_jwt_the_key_is_the_verified_claim_and_clients_cannot_send_it(mode):
    objects = render(PROD, f"deploymentMode={mode}", "istio.jwt.clientClaim=client_id")
    keys = rate_limit_keys(objects)
    assert set(keys) == {"sentiment", "emotion"}
    (header,) = set(keys.values())
    assert header and header != "x-api-key"
    for auth in by_kind(objects, "RequestAuthentication"):
        (rule,) = auth["spec"]["jwtRules"]
        assert rule["outputClaimToHeaders"] == [{"header": header, "claim": "client_id"}]
    (vs,) = [v for v in by_kind(objects, "VirtualService") if v["spec"].get("gateways") != ["mesh"]]
    for model in ("sentiment", "emotion"):
        routed = route_of(vs, f"/{model}/v1/models/{model}:predict")
        (route,) = [r for r in vs["spec"]["http"] if r["name"] == routed.route]
        assert header in route["headers"]["request"]["remove"]


def test_without_jwt_the_key_is_the_configured_unverified_header():
    objects = render(None, "transformer.rateLimit.enabled=true")
    assert set(rate_limit_keys(objects).values()) == {"x-api-key"}
    assert not by_kind(objects, "RequestAuthentication")
