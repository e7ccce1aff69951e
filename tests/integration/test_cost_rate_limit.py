"""The rate limit charges what a request costs the model, per client and for all clients together (issue 26,
items 3 and 5), against a real transformer, predictor and Redis.

A unit is a model row of up to 128 tokens (transformer/ratelimit.py): a short text costs 1, an explained text
of ten words 11. The rates are slow (a unit every 5 s) so that no refill during a busy run changes an answer.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.servers import V2Grpc, transformer_for

pytestmark = pytest.mark.integration

PREDICT = "/v1/models/sentiment:predict"
EXPLAIN = "/v1/models/sentiment:explain"


def texts(n: int, words: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [" ".join(f"{run}t{t}w{w}" for w in range(words)) for t in range(n)]


def post(server, path: str, instances: list[str], client: str) -> httpx.Response:
    return httpx.post(server.url + path, json={"instances": instances}, headers={"x-api-key": client}, timeout=60)


def test_a_client_is_charged_by_cost_and_other_clients_are_not(predictor, redis, tmp_path):
    front = transformer_for(predictor, redis, tmp_path / "transformer.log", "--rate_limit_rps", "0.2",
                            "--rate_limit_burst", "20", "--rate_limit_key", "x-api-key").start()
    try:
        assert post(front, PREDICT, ["cheap"], "storm").status_code == 200  # 1 unit: 19 left
        costly = post(front, EXPLAIN, texts(4, 10), "storm")  # 4 x 11 = 44 units: more than the bucket holds
        assert costly.status_code == 429, costly.text
        assert costly.json()["error_type"] == "rate_limited" and "costs 44 units" in costly.json()["error"]
        assert int(costly.headers["retry-after"]) >= 1  # when its bucket will be full again
        for i in range(5):  # another client's cheap texts are untouched by the storm's debts
            assert post(front, PREDICT, [f"lone {i}"], "lone").status_code == 200
        one = texts(1, 10)
        assert post(front, EXPLAIN, one, "storm").status_code == 200  # 11 units fit what is left (18)
        hit = post(front, EXPLAIN, one, "storm")  # cached: the model computes nothing, 1 unit
        assert hit.status_code == 200 and hit.headers["x-cache"] == "hit"
        again = post(front, EXPLAIN, texts(1, 10), "storm")  # 11 more: 5 units are left
        assert again.status_code == 429 and again.json()["error_type"] == "rate_limited"
    finally:
        front.stop()


def test_the_global_limit_binds_all_clients_together(predictor, redis, tmp_path):
    front = transformer_for(predictor, redis, tmp_path / "transformer.log", "--rate_limit_global_rps", "0.2",
                            "--rate_limit_global_burst", "10", "--rate_limit_key", "x-api-key").start()
    try:
        # 21 units, more than the global bucket holds: it goes on a full bucket and leaves it in debt ...
        assert post(front, EXPLAIN, texts(1, 20), "first").status_code == 200
        late = post(front, PREDICT, ["a cheap text"], "second")  # ... so a fresh client waits too
        assert late.status_code == 429, late.text
        assert "all clients together" in late.json()["error"] and int(late.headers["retry-after"]) >= 1
        assert httpx.get(front.url + "/v2/health/ready").status_code == 200  # probes are never limited
    finally:
        front.stop()


def test_grpc_refuses_a_named_client_over_its_limit_before_reading_the_message(predictor, redis, tmp_path):
    """gRPC's asyncio server runs interceptors before it receives the message (transformer/ratelimit.py,
    GrpcRateLimit): a client over its limit is refused with a handler that never reads it."""
    import grpc

    front = transformer_for(predictor, redis, tmp_path / "transformer.log", "--rate_limit_rps", "0.2",
                            "--rate_limit_burst", "2", "--rate_limit_key", "x-api-key").start()
    try:
        client = V2Grpc(front.grpc_target)

        def infer(texts: list[bytes]):
            return client.infer(texts, metadata=(("x-api-key", "grpc-client"),))

        infer([b"one"])
        infer([b"two"])
        big = [b"x" * 90_000] * 80  # 7 MB, under --max_body_bytes: refused unread
        with pytest.raises(grpc.RpcError) as caught:
            infer(big)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert '"rate_limited"' in caught.value.details()
        assert int(dict(caught.value.trailing_metadata())["retry-after"]) >= 1
        assert httpx.get(front.url + "/v2/health/ready").status_code == 200  # the server is fine
    finally:
        front.stop()


def test_grpc_refuses_a_client_keyed_by_ip_before_receiving_its_message(predictor, redis, tmp_path):
    """Without a key header the client is its peer address, known only to the handler's context: its
    ModelInfer is a stream-unary handler that charges the bucket before it pulls (receives and decodes)
    the message (transformer/ratelimit.py, GrpcRateLimit). The observable: the access log's model name
    comes from the decoded message, and a refused call's line has none; before the change the 8 MB
    message was received and decoded first, and its line named the model."""
    import grpc

    front = transformer_for(predictor, redis, tmp_path / "transformer.log", "--rate_limit_rps", "0.2",
                            "--rate_limit_burst", "2").start()
    try:
        infer = V2Grpc(front.grpc_target).infer

        first = infer([b"one"])
        assert first.model_name == "sentiment" and first.outputs  # let in: the message pulled and answered
        infer([b"two"])
        big = [b"x" * 99_000] * 80  # 7.9 MB, under --max_body_bytes: refused unread
        with pytest.raises(grpc.RpcError) as caught:
            infer(big)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert '"rate_limited"' in caught.value.details()
        assert int(dict(caught.value.trailing_metadata())["retry-after"]) >= 1
        lines = [line for line in front.log().splitlines() if "gRPC ModelInfer" in line]
        assert len([line for line in lines if " 200 " in line and "model=sentiment" in line]) == 2, lines
        refused = [line for line in lines if " 429 " in line]
        assert refused and all("model= " in line for line in refused), refused  # its message never decoded
        assert httpx.get(front.url + "/v2/health/ready").status_code == 200
    finally:
        front.stop()
