"""The gateway routes only the paths clients call: inference, model metadata/readiness, health.

/metrics and every other path of the transformer (the model repository, /docs, /openapi.json)
get no public route in either deployment mode: the gateway answers 404. Prometheus scrapes the
pods inside the mesh. Routes are decided as Istio 1.27 decides them (tests/chart/routes.py).
"""

import re

import pytest

from tests.chart.helm import CHART, ROOT, by_kind, helm, render
from tests.chart.routes import route_of

pytestmark = pytest.mark.chart

MODES = {"Knative": (None,), "Standard": (None, "deploymentMode=Standard"),
         "Standard, mirrored shadow": (CHART / "ci" / "shadow-values.yaml", "deploymentMode=Standard",
                                       "models.sentiment.shadow.via=mirror")}

PUBLIC = ["/v1/models/{m}", "/v1/models/{m}:predict", "/v1/models/{m}:explain", "/v2/models/{m}",
          "/v2/models/{m}/ready", "/v2/models/{m}/infer", "/v2/health/live", "/v2/health/ready"]

NOT_PUBLIC = ["/metrics", "/{m}/metrics", "/{m}/metrics?name[]=x", "/{m}/", "/{m}", "/{m}/docs", "/{m}/openapi.json",
              "/{m}/v2", "/{m}/v2/repository/index", "/{m}/v2/repository/models/{m}/unload", "/{m}/v1/models",
              "/{m}/v2/models/{m}/infer/", "/{m}/V1/models/{m}:predict", "/{m}/v2/models/{m}/infer/../../../../metrics",
              "/{m}/v1/models/{m}:predict/x", "/{m}/v1/models/{other}:predict", "/{m}/v2/models/{other}/infer",
              "/healthz", "/{m}/healthz", "/v2/health/ready", "/{m}/v1/models/{m}:predictx"]


def gateway_routes(objects):
    (vs,) = [v for v in by_kind(objects, "VirtualService") if v["spec"].get("gateways") != ["mesh"]]
    return vs


@pytest.mark.parametrize("mode", MODES)
def test_each_models_public_paths_reach_it_with_the_prefix_stripped(mode):
    vs = gateway_routes(render(*MODES[mode]))
    for model in ("sentiment", "emotion"):
        for path in PUBLIC:
            path = path.format(m=model)
            for query in ("", "?x=1"):
                routed = route_of(vs, f"/{model}{path}{query}")
                assert routed is not None, (mode, model, path)
                assert routed.route == model and routed.path == path + query
                if mode == "Knative":
                    assert routed.authority == f"{model}.text.svc.cluster.local"


@pytest.mark.parametrize("mode", MODES)
def test_metrics_and_every_other_path_have_no_public_route(mode):
    # The chart before issue 26 routed every path under /<model>/: /sentiment/metrics reached the
    # transformer's metrics (exempt from the JWT check), and the model repository and /docs too.
    vs = gateway_routes(render(*MODES[mode]))
    for model, other in (("sentiment", "emotion"), ("emotion", "sentiment")):
        for path in NOT_PUBLIC:
            path = path.format(m=model, other=other)
            assert route_of(vs, path) is None, (mode, path)


def test_the_paths_clients_are_given_are_routed():
    # What the chart's NOTES, its helm test, the load generator and the docs tell clients to call.
    objects = render(CHART / "values-prod.yaml")
    vs = gateway_routes(objects)
    host = vs["spec"]["hosts"][0]
    called = []
    for pod in by_kind(objects, "Pod"):
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        script = pod["spec"]["containers"][0]["args"][0]
        (suffix,) = re.findall(r'"\$URL(/[^"]+)"', script)
        called.append(env["URL"].split(host, 1)[1] + suffix.replace("$MODEL", env["MODEL"]))
    notes = helm("install", "demo", str(CHART), "--namespace", "text", "--dry-run=client", "-f",
                 str(CHART / "values-prod.yaml")).stdout.split("NOTES:", 1)[1]
    called += re.findall(rf"https?://{re.escape(host)}(/[^ ']+)", notes)
    locust = (ROOT / "load" / "locustfile.py").read_text()
    called += ["/sentiment" + p.replace("{self.model}", "sentiment") for p in re.findall(r'f"(/v[12]/[^"]+)"', locust)]
    modes = (ROOT / "docs" / "deployment-modes.md").read_text()
    called += [p.replace("<model>", "emotion") for p in re.findall(r"https://<host>(/[^`]+)`", modes)]
    assert len(called) >= 6 and any(":predict" in p for p in called) and any("/infer" in p for p in called)
    for path in called:
        assert route_of(vs, path) is not None, path
