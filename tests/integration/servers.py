"""The tests' side of the process harness (harness/processes.py): gRPC calls with tritonclient, metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from harness.processes import ROOT, SERVER_ENV, RedisProcess, ServerProcess, free_port  # noqa: F401  (for the tests)

# One client for the tests' plain calls (httpx.Client may be shared by threads). ``httpx.post`` builds a
# client, and so an SSL context from the CA bundle, per call: 10 ms on an idle machine, 0.7 s measured on
# this 2-core machine under load, which then slows every test and blurs every timing it checks. Tests
# that need a new connection per request (worker spreading, readiness seen by a new client) send CLOSE.
HTTP = httpx.Client(timeout=30)
CLOSE = {"connection": "close"}  # HTTP's headers for a request on a connection of its own (none is kept alive)


def triton_grpc_infer(target: str, model: str, texts: list) -> dict:
    """tritonclient.grpc's answer, from a subprocess (see triton_grpc_call.py for why)."""
    script = Path(__file__).with_name("triton_grpc_call.py")
    done = subprocess.run([sys.executable, str(script), target, model], input=json.dumps(texts),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


class V2Grpc:
    """V2 gRPC ``ModelInfer`` of texts as one BYTES input, on a channel of its own (no send limit on the
    client's side, so the server's limits are the ones tested)."""

    def __init__(self, target: str, model: str = "sentiment"):
        import grpc
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

        self.pb, self.model = pb, model
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)])
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)

    def infer(self, texts: list[bytes | str], metadata: tuple = (), timeout: float = 30):
        contents = self.pb.InferTensorContents(bytes_contents=[t.encode() if isinstance(t, str) else t for t in texts])
        tensor = self.pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[len(texts)],
                                                            contents=contents)
        return self.stub.ModelInfer(self.pb.ModelInferRequest(model_name=self.model, inputs=[tensor]),
                                    metadata=metadata, timeout=timeout)

    def close(self) -> None:
        self.channel.close()


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample on ``url``/metrics (0 when absent)."""
    return sample_in(HTTP.get(f"{url}/metrics", timeout=10).text, name, **labels)


def sample_in(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a scrape's text (0 when absent): read two from one scrape to compare them."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def metric_at_least(url: str, name: str, minimum: float, timeout_s: float = 10, **labels: str) -> float:
    """The sample's value once it reaches ``minimum`` (or, past ``timeout_s``, whatever it is).

    The request counters are incremented after the answer has gone out (contract/accesslog.py),
    so a scrape sent the moment the last answer arrives can race them on a busy machine.
    """
    deadline = time.monotonic() + timeout_s
    while (value := metric(url, name, **labels)) < minimum and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


# The transformer's Redis deadline in tests: its 20 ms default is what a cluster's Redis answers
# within, but on a loaded 2-core CI machine a scheduling gap alone can pass it, turning an expected
# hit into a miss. Tests that are about the deadline (test_faults.py) set their own.
TEST_CACHE_TIMEOUT_MS = "1000"


def transformer_for(predictor: ServerProcess, redis, log, *extra: str, name: str = "sentiment",
                    protocol: str = "v2", cache_headers: bool = True, env: dict | None = None) -> ServerProcess:
    """A transformer for ``predictor`` with ``redis`` (a RedisProcess or a URL); ``extra`` flags win.

    With ``--cache_headers true`` unless ``cache_headers`` is false (then no flag: the default, off): most
    tests read a request's cache outcome from ``x-cache``. ``env``: more environment (e.g. CACHE_KEY_SECRET)."""
    target = predictor.grpc_target if protocol == "grpc-v2" else f"127.0.0.1:{predictor.http_port}"
    url = redis if isinstance(redis, str) else redis.url
    headers = ["--cache_headers", "true"] if cache_headers else []
    return ServerProcess("transformer", ["--model_name", name, "--predictor_host", target, "--predictor_protocol",
                                         protocol, "--redis_url", url, "--cache_timeout_ms", TEST_CACHE_TIMEOUT_MS,
                                         *headers, *extra], log, env=env)


def rss_mb(server: ServerProcess) -> float:
    """The resident memory of a server's process, in MiB."""
    return psutil.Process(server.process.pid).memory_info().rss / 2**20
