"""The Standard-mode predictor pod, as rendered, answers REST and gRPC on its two ports.

deploymentMode=Standard gives the predictor container two ports (http 8080, grpc 8081:
KServe v0.20's raw Service maps the first to port 80 and keeps the second as 8081 with
appProtocol grpc). Here the image runs with the rendered args, env, securityContext and
limits, in its own network namespace with exactly the rendered container ports published
(nothing appended: the ports are the chart's), and the rendered probes are sent as the
kubelet sends them. Then one V2 inference over each protocol.
"""

from __future__ import annotations

import httpx
import pytest

from bench.containers import Container, Spec, engine, rendered
from bench.processes import free_port
from tests.images.conftest import require_image
from tests.integration.adversarial import v2_body
from tests.integration.servers import triton_grpc_infer

pytestmark = [pytest.mark.integration, pytest.mark.images]


class PublishedContainer(Container):
    """The rendered container in its own network namespace, each rendered containerPort published on a free host port."""

    def __init__(self, component: dict):
        super().__init__(Spec.of(component), prefix="tc-standard")
        container = component["containers"][0]
        self.ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        self.host_ports = {number: free_port() for number in self.ports.values()}
        self.probes = {kind: container[kind] for kind in ("readinessProbe", "livenessProbe")}
        self.http_port = self.host_ports[self.probes["readinessProbe"]["httpGet"]["port"]]

    def run(self) -> PublishedContainer:
        published = [flag for inside, outside in self.host_ports.items()
                     for flag in ("-p", f"127.0.0.1:{outside}:{inside}")]
        env_flags = [flag for key, value in self.env.items() for flag in ("-e", f"{key}={value}")]
        engine("run", "-d", "--name", self.name, *published, *self.spec.flags, *env_flags, self.spec.image,
               *self.spec.args, timeout=180)
        return self

    def probe(self, kind: str) -> int:
        """The kubelet's httpGet probe: the rendered path on the rendered port."""
        get = self.probes[kind]["httpGet"]
        return httpx.get(f"http://127.0.0.1:{self.host_ports[get['port']]}{get['path']}", timeout=5).status_code


@pytest.fixture(scope="module")
def standard_predictor(engine):
    service = rendered("deploymentMode=Standard")["sentiment"]
    component = service["spec"]["predictor"]
    require_image(component["containers"][0]["image"])
    container = PublishedContainer(component)
    try:
        container.run().wait_ready(path=container.probes["readinessProbe"]["httpGet"]["path"])
        yield container
    finally:
        container.remove()


def test_the_rendered_pod_has_both_ports_and_its_probes_pass(standard_predictor):
    assert standard_predictor.ports == {"http": 8080, "grpc": 8081}
    assert standard_predictor.probe("readinessProbe") == 200
    assert standard_predictor.probe("livenessProbe") == 200


def test_it_answers_rest_and_grpc_with_the_same_model(standard_predictor):
    text = "a wonderful, moving film"
    rest = httpx.post(f"{standard_predictor.url}/v2/models/sentiment/infer", json=v2_body([text]), timeout=30)
    assert rest.status_code == 200, rest.text
    answer = rest.json()
    labels = next(o for o in answer["outputs"] if o["name"] == "label")["data"]
    grpc_port = standard_predictor.host_ports[standard_predictor.ports["grpc"]]
    grpc = triton_grpc_infer(f"127.0.0.1:{grpc_port}", "sentiment", [text])
    assert grpc["label"] == labels == ["POSITIVE"]
    assert grpc["model_version"] == answer["model_version"]
    args = standard_predictor.spec.args
    assert f"--model_version={answer['model_version']}" in args  # the rendered version, over both protocols
