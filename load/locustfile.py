"""Locust load test for the text classifier: V1 REST, V2 REST and V2 gRPC users.

Headless, with the SLO gate, CSV, the HTML report and a latency/throughput plot:

    make load                                            # against `make serve` (127.0.0.1:8080 / :8081)
    .venv/bin/python load/run.py --host http://127.0.0.1:8080 --peak-users 10 --hold-s 120
    .venv/bin/python load/run.py --host https://text.example.com/sentiment --protocols v1,v2

Interactive, with locust's web UI on :8089:

    .venv/bin/locust -f load/locustfile.py --host http://127.0.0.1:8080

Options added to locust's own (``locust -f load/locustfile.py --help``):

  --model NAME            model in the URL paths (sentiment)
  --cache-rate F          fraction of texts drawn from a small hot set, the rest are new
                          texts never seen before (0.95, as in the reference test)
  --batch-sizes LIST      texts per request, drawn uniformly from this list (1,1,1,1,2,4,8)
  --grpc-host HOST:PORT   V2 gRPC endpoint for the gRPC users (127.0.0.1:8081)
  --peak-users N          the load shape: ramp up to N users ...
  --ramp-s S              ... over S seconds,
  --hold-s S              hold for S seconds, then ramp down over S seconds again

The text pool is real sentences: SST-2's whole sentences from ../shared when it is
there, else load/sentences.txt. Pick the user classes to run by name (V1User,
V2User, GrpcUser); load/run.py does it from ``--protocols``.
"""

from __future__ import annotations

import csv
import random
import time
import uuid
from pathlib import Path

from locust import HttpUser, LoadTestShape, User, between, events, task

HERE = Path(__file__).resolve().parent
SST2 = HERE.parent.parent / "shared" / "data" / "sst2" / "train.tsv"
HOT_SET_SIZE = 50


def sentence_pool(limit: int = 5000) -> list[str]:
    """Real sentences, in a fixed order: the first HOT_SET_SIZE form the hot (cached) set."""
    if SST2.is_file():
        with SST2.open(encoding="utf-8") as handle:
            rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            sentences = [r["text"].strip() for r in rows if r["text"].rstrip().endswith((".", "!", "?"))
                         and len(r["text"].split()) >= 6]
        return sentences[:limit]
    return [line.strip() for line in (HERE / "sentences.txt").read_text().splitlines() if line.strip()]


POOL = sentence_pool()


@events.init_command_line_parser.add_listener
def _options(parser):
    parser.add_argument("--model", default="sentiment", help="model name in the URL paths")
    parser.add_argument("--cache-rate", type=float, default=0.95, help="fraction of texts from the hot set")
    parser.add_argument("--batch-sizes", default="1,1,1,1,2,4,8", help="texts per request, drawn from this list")
    parser.add_argument("--grpc-host", default="127.0.0.1:8081", help="V2 gRPC endpoint for GrpcUser")
    parser.add_argument("--peak-users", type=int, default=10, help="users at the top of the load shape")
    parser.add_argument("--ramp-s", type=float, default=30, help="seconds to ramp up (and down)")
    parser.add_argument("--hold-s", type=float, default=120, help="seconds at the peak")


class Payloads:
    """Texts for one request: hot-set texts with probability cache_rate, else a text never sent before."""

    def __init__(self, options):
        self.cache_rate = options.cache_rate
        self.batch_sizes = [int(size) for size in options.batch_sizes.split(",")]
        self.hot = POOL[:HOT_SET_SIZE]

    def texts(self) -> list[str]:
        return [random.choice(self.hot) if random.random() < self.cache_rate
                else f"{random.choice(POOL)} [{uuid.uuid4().hex[:8]}]"  # a new text: a guaranteed cache miss
                for _ in range(random.choice(self.batch_sizes))]


class _Client:
    wait_time = between(0.05, 0.2)

    def on_start(self):
        self.payloads = Payloads(self.environment.parsed_options)
        self.model = self.environment.parsed_options.model


class V1User(_Client, HttpUser):
    @task
    def predict(self):
        texts = self.payloads.texts()
        with self.client.post(f"/v1/models/{self.model}:predict", json={"instances": texts},
                              name=f"V1 predict ({self.model})", catch_response=True) as response:
            if response.status_code == 200 and len(response.json()["predictions"]) != len(texts):
                response.failure("wrong number of predictions")


class V2User(_Client, HttpUser):
    @task
    def infer(self):
        texts = self.payloads.texts()
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
        with self.client.post(f"/v2/models/{self.model}/infer", json=body, name=f"V2 infer ({self.model})",
                              catch_response=True) as response:
            if response.status_code == 200 and not any(o["name"] == "label" for o in response.json()["outputs"]):
                response.failure("no label output")


class GrpcUser(_Client, User):
    """V2 gRPC through tritonclient (cooperative with locust's gevent once init_gevent ran)."""

    def on_start(self):
        super().on_start()
        import grpc.experimental.gevent as grpc_gevent
        import tritonclient.grpc as triton_grpc

        grpc_gevent.init_gevent()
        self.grpc = triton_grpc
        self.connection = triton_grpc.InferenceServerClient(self.environment.parsed_options.grpc_host)

    def on_stop(self):
        self.connection.close()  # an open gRPC channel under gevent keeps locust from exiting

    @task
    def infer(self):
        import numpy as np

        texts = self.payloads.texts()
        tensor = self.grpc.InferInput("text", [len(texts)], "BYTES")
        tensor.set_data_from_numpy(np.array(texts, dtype=object))
        started, error = time.perf_counter(), None
        try:
            self.connection.infer(self.model, [tensor])
        except Exception as exc:  # every failure is reported to locust, whatever its type
            error = exc
        self.environment.events.request.fire(
            request_type="grpc", name=f"V2 gRPC ModelInfer ({self.model})", response_length=0,
            response_time=(time.perf_counter() - started) * 1000, exception=error, context={},
        )


class RampHoldRampDown(LoadTestShape):
    """The reference test's shape: ramp up to --peak-users, hold, ramp down, stop."""

    def tick(self):
        options = self.runner.environment.parsed_options
        ramp, hold, peak = options.ramp_s, options.hold_s, options.peak_users
        elapsed = self.get_run_time()
        if elapsed < ramp:
            users = max(1, round(peak * elapsed / ramp)) if ramp else peak
        elif elapsed < ramp + hold:
            users = peak
        elif elapsed < 2 * ramp + hold:
            users = max(1, round(peak * (2 * ramp + hold - elapsed) / ramp))
        else:
            return None
        return users, max(1.0, peak / max(ramp, 1.0))
