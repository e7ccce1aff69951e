"""Hostile input against both real services: each gets a clear 4xx within a bounded time and memory.

The table of ordinary bad requests is adversarial.py (sent by test_transformer.py and
test_predictor_errors.py); these are the abusive ones: deep nesting, 10,000 texts, a
10 MB text (declared and streamed), raw NUL bytes, content types that are not JSON.
Also here: the transformer's rate limit, REST and gRPC, and that no text sent ends up
in a log, on /metrics or in Redis.
"""

from __future__ import annotations

import json
import time
import uuid

import grpc
import httpx
import pytest
import redis as redis_client
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.integration.adversarial import V1, V2, v2_body
from tests.integration.servers import HTTP, rss_mb, transformer_for

pytestmark = pytest.mark.integration

TEN_MB = 10 * 1024 * 1024


def chunked(body: bytes, size: int = 256 * 1024):
    """A body sent without content-length (chunked): the server learns its size only by reading it."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


HOSTILE = [
    # (id, path, body bytes or an iterator of chunks, content-type, status, error_type)
    # more containers than any request of the contract has: refused before parsing (runtime/guard.py)
    ("nested 100k deep v1", V1, b"[" * 100_000 + b"]" * 100_000, "application/json", 413, "payload_too_large"),
    ("nested 100k deep v2", V2, b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json", 413,
     "payload_too_large"),
    ("nested objects in instances", V1, b'{"instances": [' + b'{"a":' * 500 + b"1" + b"}" * 500 + b"]}",
     "application/json", 400, "invalid_request"),
    ("10,000 tiny texts v1", V1, json.dumps({"instances": ["a"] * 10_000}).encode(), "application/json", 400,
     "too_many_texts"),
    ("10,000 tiny texts v2", V2, json.dumps(v2_body(["a"] * 10_000)).encode(), "application/json", 400,
     "too_many_texts"),
    ("one 10 MB text", V1, b'{"instances": ["' + b"x" * TEN_MB + b'"]}', "application/json", 413,
     "payload_too_large"),
    ("one 10 MB text, chunked", V1, lambda: chunked(b'{"instances": ["' + b"x" * TEN_MB + b'"]}'),
     "application/json", 413, "payload_too_large"),
    ("raw NUL bytes", V1, b'{"instances": ["a\x00b"]}', "application/json", 400, "invalid_json"),
    ("only NUL bytes", V2, b"\x00" * 1000, "application/json", 400, "invalid_json"),
    ("empty body v1", V1, b"", "application/json", 400, "invalid_json"),
    ("empty body v2", V2, b"", "application/json", 400, None),
    ("xml", V1, b"<instances><i>a</i></instances>", "application/xml", 400, "invalid_json"),
    ("form", V1, b"instances=a&instances=b", "application/x-www-form-urlencoded", 400, "invalid_json"),
    ("multipart", V2, b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--\r\n",
     "multipart/form-data; boundary=x", 400, None),
    ("invalid utf-8 as text/plain", V1, b'{"instances": ["\xc3\x28"]}', "text/plain", 400, None),
    ("utf-16", V1, '{"instances": ["a"]}'.encode("utf-16"), "application/json; charset=utf-16", 400, None),
]


def send(url: str, case) -> tuple[httpx.Response, float]:
    _, path, body, content_type, *_ = case
    content = body() if callable(body) else body
    started = time.monotonic()
    response = HTTP.post(url + path, content=content, headers={"content-type": content_type}, timeout=30)
    return response, time.monotonic() - started


@pytest.mark.parametrize("service", ["predictor", "transformer"])
def test_hostile_bodies_get_a_clear_4xx_in_bounded_time_and_memory(service, request):
    server = request.getfixturevalue(service)
    rss_before = None
    for round_ in range(3):  # memory must not grow with repetition
        for case in HOSTILE:
            response, seconds = send(server.url, case)
            name, *_, status, error_type = case
            assert response.status_code == status, (name, response.text[:300])
            body = response.json()
            assert isinstance(body["error"], str) and body["error"] and body["error_type"], name
            if error_type:
                assert body["error_type"] == error_type, (name, body)
            assert seconds < 5, (name, seconds)
        if round_ == 0:
            rss_before = rss_mb(server)  # after the first round: allocator pools are warm
    growth = rss_mb(server) - rss_before
    assert growth < 64, f"RSS grew by {growth:.0f} MB over two rounds of hostile bodies"
    assert HTTP.post(server.url + V1, json={"instances": ["still fine"]}).status_code == 200


def test_json_sent_as_text_plain_is_accepted(transformer):
    """Lenient on purpose (README, "Input rules"): curl -d and tritonclient send no JSON content type."""
    response = HTTP.post(transformer.url + V1, content=b'{"instances": ["fine"]}',
                          headers={"content-type": "text/plain"})
    assert response.status_code == 200


def grpc_infer(target: str, texts: list[bytes], api_key: str):
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(target))
    tensor = pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[len(texts)],
                                                   contents=pb.InferTensorContents(bytes_contents=texts))
    return stub.ModelInfer(pb.ModelInferRequest(model_name="sentiment", inputs=[tensor]),
                           metadata=(("x-api-key", api_key),), timeout=10)


def test_rate_limit_per_client_key_rest_and_grpc(predictor, redis, tmp_path):
    # --access_log false on the command line too: KServe's own parse once read it as --access_log_format.
    # 1 request per 2 s: the five calls below must fit in 2 s however busy the machine is.
    front = transformer_for(predictor, redis, tmp_path / "transformer.log", "--rate_limit_rps", "0.5",
                            "--rate_limit_burst", "3", "--rate_limit_key", "x-api-key", "--access_log", "false").start()
    try:
        def call(key: str | None) -> httpx.Response:
            headers = {"x-api-key": key} if key else {}
            return HTTP.post(front.url + V1, json={"instances": ["rate me"]}, headers=headers, timeout=10)

        statuses = [call("team-a").status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        limited = call("team-a")
        assert limited.json()["error_type"] == "rate_limited" and "retry after" in limited.json()["error"]
        assert 1 <= int(limited.headers["retry-after"]) <= 2
        assert call("team-b").status_code == 200  # another client has its own bucket
        assert call(None).status_code == 200  # no key: keyed by IP
        assert HTTP.get(front.url + "/v2/health/ready").status_code == 200  # probes are never limited
        assert HTTP.get(front.url + "/metrics").status_code == 200
        time.sleep(2.1)
        assert call("team-a").status_code == 200  # refilled at 1 per 2 seconds
        assert 'error_type="rate_limited"' in HTTP.get(front.url + "/metrics").text

        for _ in range(3):
            grpc_infer(front.grpc_target, [b"rate me"], "grpc-client")
        with pytest.raises(grpc.RpcError) as caught:
            grpc_infer(front.grpc_target, [b"rate me"], "grpc-client")
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert json.loads(caught.value.details())["error_type"] == "rate_limited"
        assert dict(caught.value.trailing_metadata())["retry-after"] in ("1", "2")
    finally:
        front.stop()


def test_rate_limiting_is_off_by_default(transformer):
    assert all(HTTP.post(transformer.url + V1, json={"instances": ["x"]}).status_code == 200 for _ in range(30))


def test_texts_never_reach_logs_metrics_or_redis(transformer, predictor, redis):
    secret = f"secret-{uuid.uuid4().hex}"
    texts = [f"{secret} my diagnosis is private", secret]
    for body, path in [({"instances": texts}, V1), ({"instances": texts}, V1), (v2_body(texts), V2),
                       ({"instances": [secret, None]}, V1), ({"instances": [secret * 10_000]}, V1),
                       ({"instances": texts * 600}, V1)]:
        HTTP.post(transformer.url + path, json=body, headers={"x-request-id": "privacy"}, timeout=30)
    HTTP.post(transformer.url + V1, content=b'{"instances": ["' + secret.encode() + b'\xff"]}')
    HTTP.post(predictor.url + V1, json={"instances": texts})
    time.sleep(0.5)  # log lines flushed
    for server in (transformer, predictor):
        assert secret not in server.log()
        assert secret not in HTTP.get(server.url + "/metrics").text
    store = redis_client.Redis.from_url(redis.url)
    keys = store.keys("*")
    assert keys and all(secret.encode() not in key for key in keys)
    assert all(secret.encode() not in (store.get(key) or b"") for key in keys)
    assert all(len(store.get(key) or b"") == 8 for key in keys)  # two float32 probabilities, nothing else


@pytest.mark.parametrize("service", ["predictor", "transformer"])
def test_clients_cannot_load_or_unload_models(service, request):
    """KServe's model repository extension is off: one unload call used to take the served model down."""
    server = request.getfixturevalue(service)
    for path in ("models/sentiment/unload", "models/sentiment/load", "models/x%0A/load", "index"):
        response = HTTP.post(f"{server.url}/v2/repository/{path}")
        assert response.status_code == 404 and response.json()["error_type"] == "route_not_found", path
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))
    with pytest.raises(grpc.RpcError) as caught:
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="sentiment"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert HTTP.get(f"{server.url}/v2/models/sentiment/ready").status_code == 200
    assert HTTP.post(server.url + V1, json={"instances": ["still served"]}).status_code == 200
