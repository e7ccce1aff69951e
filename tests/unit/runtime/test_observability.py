"""Log formatting, the multiprocess switch and the predictor's metric helpers, without a server."""

import json
import logging

import pytest
from prometheus_client import REGISTRY

from predictor import metrics
from runtime import multiproc
from runtime.logs import JsonFormatter, logging_config


def test_json_lines_carry_the_request_fields_and_nothing_else_passed_in():
    record = logging.LogRecord("contract.access", logging.INFO, __file__, 1, "POST %s %d", ("/v1/x", 200), None)
    for key, value in {"request_id": "r-1", "model": "sentiment", "model_version": "v1", "latency_ms": 3.5,
                       "cache": "hit", "status": 200, "texts": ["private words"]}.items():
        setattr(record, key, value)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "POST /v1/x 200" and line["level"] == "INFO" and line["logger"] == "contract.access"
    assert {k: line[k] for k in ("request_id", "model", "model_version", "latency_ms", "cache", "status")} == {
        "request_id": "r-1", "model": "sentiment", "model_version": "v1", "latency_ms": 3.5, "cache": "hit",
        "status": 200}
    assert "texts" not in line and "private words" not in json.dumps(line)


def test_the_access_log_can_be_switched_off():
    assert logging_config("json", "INFO", access_log=False)["loggers"]["contract.access"]["level"] == "WARNING"
    assert logging_config("json", "INFO")["loggers"]["contract.access"]["level"] == "INFO"


def test_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="json"):
        logging_config("xml")


def test_multiprocess_mode_cannot_be_switched_on_too_late(monkeypatch, tmp_path):
    monkeypatch.delenv(multiproc.ENV, raising=False)
    with pytest.raises(RuntimeError, match="before prometheus_client"):
        multiproc.enable()  # this test process imported prometheus_client long ago
    monkeypatch.setenv(multiproc.ENV, str(tmp_path / "given"))
    assert multiproc.enable() == str(tmp_path / "given") and (tmp_path / "given").is_dir()


def test_predictor_metric_helpers():
    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    batches, tokens, torch_calls = (value("predictor_batch_size_count"), value("predictor_tokens_per_text_count"),
                                    value("predictor_inference_seconds_count", backend="torch"))
    metrics.observe_batch(7)
    metrics.set_queue(12, 100)
    metrics.observe_tokens([5, 9, 512])
    metrics.observe_inference("torch", 0.03)
    assert value("predictor_batch_size_count") - batches == 1
    assert value("predictor_queue_texts") == 12 and value("predictor_queue_capacity_texts") == 100
    assert value("predictor_tokens_per_text_count") - tokens == 3
    assert value("predictor_inference_seconds_count", backend="torch") - torch_calls == 1


def test_the_predictors_timing_headers_are_passed_on_from_rest_and_grpc_answers():
    from multidict import CIMultiDict, CIMultiDictProxy

    from contract import timings

    # REST: aiohttp's case-insensitive headers, in whatever case the predictor's server wrote them
    rest = CIMultiDictProxy(CIMultiDict({"X-Queue-Time": "1.25", "x-inference-time": "3.50", "X-Cache": "miss",
                                         "content-type": "application/json"}))
    assert timings.passed_on(rest) == {timings.QUEUE_TIME: "1.25", timings.INFERENCE_TIME: "3.50"}
    # gRPC: initial metadata, lower case by the protocol; values may come as other types
    grpc = {"x-compute-tokens": 12, "x-compute-characters": "40", "x-request-id": "r-1"}
    assert timings.passed_on(grpc) == {timings.COMPUTE_TOKENS: "12", timings.COMPUTE_CHARACTERS: "40"}
    assert timings.passed_on(None) == {} and timings.passed_on({}) == {}


def test_new_request_ids_are_distinct_version_4_uuids():
    import uuid

    from runtime.accesslog import new_request_id, valid_request_id

    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:200]:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, value)
        assert valid_request_id(value) == value  # what a client may send back as its own id
