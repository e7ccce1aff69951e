"""The two deadlines in order, with real processes: the predictor publishes its own deadline in its model
metadata, and a transformer whose deadline does not exceed it refuses to serve (runtime/settings.py,
``deadline_order_problem``), so that the predictor's 504 and the transformer's never race."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.servers import transformer_for

pytestmark = pytest.mark.integration


def test_the_predictor_publishes_its_deadline(predictor):
    metadata = httpx.get(f"{predictor.url}/v2/models/sentiment", timeout=10).json()
    assert metadata["parameters"]["request_timeout_s"] == 10


def test_a_transformer_whose_deadline_is_not_the_later_refuses_and_turns_not_ready(predictor, redis, tmp_path):
    # The predictor fixture keeps the code's default deadline (10 s); this transformer waits no longer.
    front = transformer_for(predictor, redis, tmp_path / "transformer.log",
                            "--predictor_request_timeout_seconds", "10").start()
    try:
        answers = [httpx.post(f"{front.url}/v1/models/sentiment:predict", json={"instances": ["good"]}, timeout=30)
                   for _ in range(2)]
        assert [(a.status_code, a.json()["error_type"]) for a in answers] == [(503, "model_not_ready")] * 2
        # the first contact says why; later requests meet a model that is not ready (KServe's own answer)
        assert "--predictor_request_timeout_seconds (10 s) must exceed" in answers[0].json()["error"]
        assert httpx.get(f"{front.url}/v2/health/ready", timeout=10).status_code == 503
        assert "Not ready: the transformer's --predictor_request_timeout_seconds (10 s) must exceed the " \
               "predictor's --request_timeout_s (10 s)" in front.log()
    finally:
        front.stop()
