"""Another client's lone text is answered while one client storms ``:explain`` (issue 26, item 3).

The bundled sentiment model (full size, int8): one storm request is ~4,096 rows of ~300
tokens, minutes of compute. Before batches were bounded in tokens and shared in turns, a
lone text queued behind it waited ~10 s (its deadline); bench/fairness.py measures the
p95 (BENCHMARKS.md, "Fairness"). The bound here is generous on purpose: a busy CI
machine must not fail it, and the old behaviour cannot pass it.
"""

from __future__ import annotations

import statistics
import threading
import time

import httpx
import pytest

from bench.fairness import EXPLAIN, PREDICT, STORM_BODY
from tests.integration.servers import ServerProcess

pytestmark = pytest.mark.integration

LONE_P95_BOUND_S = 3.0


def test_a_lone_text_is_answered_during_an_explain_storm(tmp_path):
    server = ServerProcess("predictor", ["--model_name", "sentiment"], tmp_path / "predictor.log").start()
    stop = threading.Event()

    def storm() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                client.post(server.url + EXPLAIN, json=STORM_BODY)

    threads = [threading.Thread(target=storm, daemon=True) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the storm is queued first
        latencies = []
        with httpx.Client(timeout=60) as client:
            for i in range(20):
                started = time.perf_counter()
                response = client.post(server.url + PREDICT, json={"instances": [f"a lone text, number {i}"]})
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
        p95 = statistics.quantiles(latencies, n=20)[-1]
        assert p95 < LONE_P95_BOUND_S, f"p95 {p95:.2f} s (median {statistics.median(latencies):.2f} s)"
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        server.stop()
