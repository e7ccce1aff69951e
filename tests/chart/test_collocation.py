"""transformer.collocated: one Knative service per model, the transformer calling the model container on localhost.

KServe's collocation layout (its docs, "Collocate Transformer and Predictor"): the
predictor component lists both containers, ``kserve-container`` (the model) first;
only the transformer-container has a port, so Knative routes to and probes it, and
it is ready only once the model is (``--enable_predictor_health_check``). The CRD
validation of this rendering is test_chart.py's, over ci/collocated-values.yaml.
"""

import pytest

from tests.chart.helm import CHART, by_kind, render

COLLOCATED = CHART / "ci" / "collocated-values.yaml"


def flag(args: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"--{name}="))


@pytest.mark.parametrize("protocol,port_flag", [("v2", "http_port"), ("grpc-v2", "grpc_port")])
def test_one_pod_per_model_and_the_transformer_calls_localhost(protocol, port_flag):
    services = by_kind(render(COLLOCATED, f"transformer.predictorProtocol={protocol}"), "InferenceService")
    assert {s["metadata"]["name"] for s in services} == {"sentiment", "emotion"}
    for service in services:
        assert "transformer" not in service["spec"], "a transformer component is a second Knative service"
        model, transformer = service["spec"]["predictor"]["containers"]
        assert model["name"] == "kserve-container" and transformer["name"] == "transformer-container"
        assert "ports" not in model and "readinessProbe" not in model  # Knative serves one container
        assert transformer["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
        assert flag(transformer["args"], "http_port") == "8080"
        assert flag(transformer["args"], "predictor_host") == f"localhost:{flag(model['args'], port_flag)}"
        assert "--enable_predictor_health_check" in transformer["args"]
        assert {flag(model["args"], "http_port"), flag(model["args"], "grpc_port")}.isdisjoint({"8080", "8081"})
        mounts = {c["name"]: c["volumeMounts"][0]["name"] for c in (model, transformer)}
        volumes = {v["name"] for v in service["spec"]["predictor"]["volumes"]}
        assert len(set(mounts.values())) == 2 and set(mounts.values()) <= volumes  # an emptyDir /tmp each


def test_the_split_layout_keeps_its_transformer_component():
    for service in by_kind(render(), "InferenceService"):
        assert [c["name"] for c in service["spec"]["predictor"]["containers"]] == ["kserve-container"]
        transformer = service["spec"]["transformer"]["containers"][0]
        assert not any(a.startswith("--predictor_host=") for a in transformer["args"])  # KServe injects it
