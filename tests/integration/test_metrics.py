"""Observability of the real services: /metrics after traffic, across worker processes, and the JSON access log.

The predictor, a transformer with two uvicorn workers and Redis run as real
processes. Every metric name the chart's dashboard and alert rules query must be on
a /metrics page after ordinary traffic (tests/chart/observability.py reads the names).
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.chart.observability import dashboard_metric_names, rule_metric_names
from tests.integration.adversarial import V1, V2, v2_body
from tests.integration.servers import (
    CLOSE,
    HTTP,
    ServerProcess,
    metric,
    metric_at_least,
    transformer_for,
    triton_grpc_infer,
)

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def transformer(predictor, redis, tmp_path_factory):
    """Two uvicorn workers, JSON logs: counts must add up across the workers."""
    server = transformer_for(predictor, redis, tmp_path_factory.mktemp("logs") / "transformer.log",
                             "--workers", "2", "--log_format", "json")
    server.start()
    yield server
    server.stop()


def sample_names(url: str) -> set[str]:
    text = HTTP.get(f"{url}/metrics", timeout=10).text
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def access_lines(server: ServerProcess) -> list[dict]:
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "contract.access"]


def access_lines_where(server: ServerProcess, wanted, count: int = 1, timeout_s: float = 5) -> list[dict]:
    """The access lines ``wanted`` accepts, once there are ``count`` (the line follows the answer by a moment)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = [line for line in access_lines(server) if wanted(line)]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def one_request_per_connection(url: str, n: int, texts: list[str]) -> list[httpx.Response]:
    """``n`` requests, each on a new connection, so the kernel spreads them over the workers."""
    def send(_):
        return HTTP.post(f"{url}{V1}", json={"instances": texts}, headers=CLOSE)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(send, range(n)))


def test_counts_add_up_across_worker_processes(transformer):
    before = metric(transformer.url, "text_classifier_requests_total", model_name="sentiment", status="200")
    lookups_before = sum(metric(transformer.url, "transformer_cache_lookups_total", model_name="sentiment",
                                outcome=outcome) for outcome in ("hit", "miss"))
    answers = one_request_per_connection(transformer.url, 40, [f"workers {uuid.uuid4().hex}"])
    assert [a.status_code for a in answers] == [200] * 40
    pids = {line["pid"] for line in access_lines_where(transformer, lambda line: line["method"] == "POST", count=40)}
    assert len(pids) == 2, f"requests were served by {pids}: not both workers"
    # the counters are written after each answer has gone out: the first scrape waits for them to land
    # (servers.metric_at_least), then every scrape lands on either worker and must see all of them
    assert metric_at_least(transformer.url, "text_classifier_requests_total", before + 40, model_name="sentiment",
                           status="200") - before == 40
    for _ in range(6):
        after = metric(transformer.url, "text_classifier_requests_total", model_name="sentiment", status="200")
        assert after - before == 40
    lookups = sum(metric(transformer.url, "transformer_cache_lookups_total", model_name="sentiment", outcome=outcome)
                  for outcome in ("hit", "miss"))
    assert lookups - lookups_before == 40  # one distinct text per request, in whichever worker


def test_predictor_counts_add_up_across_worker_processes(tiny_model_dir, tmp_path):
    server = ServerProcess("predictor", ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir),
                                         "--workers", "2"], tmp_path / "workers.log").start()
    try:
        answers = one_request_per_connection(server.url, 30, ["one", "two"])
        assert [a.status_code for a in answers] == [200] * 30
        # gRPC is served by the parent process: REST scrapes (answered by the workers) must count it too
        assert "label" in triton_grpc_infer(server.grpc_target, "sentiment", ["three"])
        assert metric_at_least(server.url, "text_classifier_requests_total", 31, model_name="sentiment",
                               status="200") == 31
        for _ in range(4):
            assert metric(server.url, "text_classifier_requests_total", model_name="sentiment", status="200") == 31
            assert metric(server.url, "predictor_texts_total", model_name="sentiment") == 61
            batches = metric(server.url, "predictor_batch_size_count")
            assert 2 <= batches <= 31 and metric(server.url, "predictor_batch_size_sum") == 61
    finally:
        server.stop()


def test_errors_are_counted_by_error_type_on_both_services(transformer, predictor):
    for server in (transformer, predictor):
        before = metric(server.url, "text_classifier_errors_total", model_name="sentiment", error_type="invalid_request")
        bad = HTTP.post(f"{server.url}{V1}", json={"instances": ["fine", None]}, timeout=10)
        assert bad.status_code == 400 and bad.json()["error_type"] == "invalid_request"
        after = metric(server.url, "text_classifier_errors_total", model_name="sentiment", error_type="invalid_request")
        assert after - before == 1
        assert metric_at_least(server.url, "text_classifier_requests_total", 1, model_name="sentiment",
                               status="400") >= 1
    HTTP.post(f"{predictor.url}/v1/models/nope:predict", json={"instances": ["x"]}, timeout=10)
    # a model this server does not serve is counted without its name: clients cannot mint label values
    assert metric(predictor.url, "text_classifier_errors_total", model_name="", error_type="model_not_found") >= 1


def test_grpc_requests_and_errors_are_counted_like_rest(transformer):
    def count(name, **labels):
        return metric(transformer.url, name, model_name="sentiment", **labels)

    ok, bad, invalid = (count("text_classifier_requests_total", status="200"),
                        count("text_classifier_requests_total", status="400"),
                        count("text_classifier_errors_total", error_type="invalid_text"))
    assert "label" in triton_grpc_infer(transformer.grpc_target, "sentiment", [f"grpc {uuid.uuid4().hex}"])
    error = triton_grpc_infer(transformer.grpc_target, "sentiment", [{"hex": b"\xff\xfe bad".hex()}])
    assert error["status"] == "StatusCode.INVALID_ARGUMENT"
    # gRPC is served by the parent process, REST by the workers: one /metrics sees all three
    assert count("text_classifier_requests_total", status="200") - ok == 1
    assert count("text_classifier_requests_total", status="400") - bad == 1
    assert count("text_classifier_errors_total", error_type="invalid_text") - invalid == 1
    grpc_lines = access_lines_where(transformer, lambda line: line["method"] == "gRPC", count=2)
    assert [(line["status"], line.get("error_type")) for line in grpc_lines][-2:] == [(200, None),
                                                                                      (400, "invalid_text")]


def test_access_log_is_one_json_line_per_request_without_the_text(transformer):
    secret = f"private words {uuid.uuid4().hex}"
    request_id = str(uuid.uuid4())
    answer = HTTP.post(f"{transformer.url}{V2}", json=v2_body([secret]), headers={"x-request-id": request_id},
                        timeout=30)
    assert answer.status_code == 200
    lines = access_lines_where(transformer, lambda line: line["request_id"] == request_id)
    assert len(lines) == 1
    line = lines[0]
    assert line["model"] == "sentiment" and line["status"] == 200 and line["cache"] == "miss"
    assert line["model_version"] and line["latency_ms"] > 0
    assert secret not in transformer.log()
    bad_id = str(uuid.uuid4())
    HTTP.post(f"{transformer.url}{V1}", json={"instances": [None]}, headers={"x-request-id": bad_id}, timeout=30)
    (bad,) = access_lines_where(transformer, lambda line: line["request_id"] == bad_id)
    assert bad["status"] == 400 and bad["error_type"] == "invalid_request"
    generated = HTTP.post(f"{transformer.url}{V1}", json={"instances": ["x"]}, timeout=30).headers["x-request-id"]
    assert len(access_lines_where(transformer, lambda line: line["request_id"] == generated)) == 1


def test_every_metric_the_dashboard_and_the_alerts_use_is_exported(transformer, predictor, redis, tmp_path):
    texts = [f"dashboard {uuid.uuid4().hex}", "a hot text"]
    for _ in range(3):
        assert HTTP.post(f"{transformer.url}{V1}", json={"instances": texts}, timeout=30).status_code == 200
    HTTP.post(f"{transformer.url}{V1}", json={"instances": [None]}, timeout=10)
    exported = sample_names(transformer.url) | sample_names(predictor.url)
    # the shadow-scoring metrics: a transformer shadowing onto the same predictor
    shadowing = ServerProcess("transformer", [
        "--model_name", "sentiment", "--predictor_host", f"127.0.0.1:{predictor.http_port}", "--redis_url", redis.url,
        "--shadow_predictor_host", f"127.0.0.1:{predictor.http_port}"], tmp_path / "shadowing.log").start()
    try:
        body = {"instances": [f"shadowed {uuid.uuid4().hex}"]}
        assert httpx.post(f"{shadowing.url}{V1}", json=body, timeout=30).status_code == 200
        deadline = time.monotonic() + 10  # the shadow call finishes after the answer
        while metric(shadowing.url, "transformer_shadow_texts_total", outcome="compared") < 1:
            assert time.monotonic() < deadline, shadowing.log()[-2000:]
            time.sleep(0.1)
        exported |= sample_names(shadowing.url)
    finally:
        shadowing.stop()
    used = dashboard_metric_names() | rule_metric_names()
    assert len(used) >= 10  # the parsing found the queries
    assert used - exported == set(), f"used but not exported; exported: {sorted(exported)}"
