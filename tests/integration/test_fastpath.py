"""The cache-hit fast path (transformer/fastpath.py) answers exactly what the full path answers, byte for byte.

Two real transformers share one real predictor and one real Redis: one as shipped
(fast path on), one with ``--fast_path false``. Every request below goes to both;
status, headers (the per-request ids and times aside) and bodies must be identical.
Cached requests are the fast path's; the rest (misses, parameters, binary V2, every
case of the error table) must fall through to the full path unchanged.
"""

from __future__ import annotations

import json
import re
import struct
import time

import pytest
import redis as redis_client

from tests.integration.adversarial import ERROR_CASES, OK_CASES, V1, V2, v2_body
from tests.integration.servers import HTTP, metric, transformer_for

pytestmark = pytest.mark.integration

# Different per request or per run, not per path: compared by presence only.
VARYING = {"date", "x-request-id", "x-total-time", "x-queue-time", "x-tokenization-time", "x-inference-time"}
UUID = re.compile(rb'"id":"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"')
JSON = {"content-type": "application/json"}


def binary_v2(texts: list[str]) -> tuple[bytes, dict]:
    """A V2 request with its texts in the binary extension (length-prefixed BYTES after a JSON header)."""
    raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return header + raw, {"inference-header-content-length": str(len(header)), "content-type": "application/octet-stream"}


CACHED = [
    # (id, path, json body or (bytes, headers))
    ("v1 one text", V1, {"instances": ["what a lovely film"]}),
    ("v1 repeats and unicode", V1, {"instances": ["what a lovely film", "dreadful 😀 \u2028", "what a lovely film"]}),
    ("v1 empty parameters", V1, {"instances": ["dreadful 😀 \u2028"], "parameters": {}}),
    ("v1 truncation parameter", V1, {"instances": ["what a lovely film"], "parameters": {"truncation": "head"}}),
    ("v1 extra field", V1, {"instances": ["what a lovely film"], "texts": 1}),
    ("v2 with id", V2, {"id": "req-é/1", **v2_body(["what a lovely film", "dreadful 😀 \u2028"])}),
    ("v2 without id", V2, v2_body(["what a lovely film"])),
    ("v2 empty id", V2, {"id": "", **v2_body(["what a lovely film"])}),
    ("v2 nested [n, 1]", V2, v2_body([["what a lovely film"], ["dreadful 😀 \u2028"]], shape=[2, 1])),
    ("v2 flat [n, 1]", V2, v2_body(["what a lovely film"], shape=[1, 1])),
    ("v2 other input name", V2, {"inputs": [{**v2_body(["what a lovely film"])["inputs"][0], "name": "texts"}]}),
    ("v2 requested outputs", V2, {**v2_body(["what a lovely film"]), "outputs": [{"name": "label"}]}),
    ("v2 explain parameter", V2, {**v2_body(["what a lovely film"]), "parameters": {"explain": True}}),
    ("v2 binary", V2, binary_v2(["what a lovely film", "dreadful 😀 \u2028"])),
    ("v1 explain verb", "/v1/models/sentiment:explain", {"instances": ["what a lovely film"]}),
]


@pytest.fixture(scope="module")
def pair(predictor, redis, tmp_path_factory):
    logs = tmp_path_factory.mktemp("fastpath")
    fast = transformer_for(predictor, redis, logs / "fast.log").start()
    full = transformer_for(predictor, redis, logs / "full.log", "--fast_path", "false").start()
    yield fast, full
    fast.stop()
    full.stop()


def send(url: str, path: str, body, method: str = "POST"):
    if isinstance(body, tuple):
        content, headers = body
        return HTTP.request(method, url + path, content=content, headers=headers, timeout=60)
    if isinstance(body, bytes):
        return HTTP.request(method, url + path, content=body, headers=JSON, timeout=60)
    return HTTP.request(method, url + path, json=body, timeout=60)


def seen(response) -> tuple:
    """What a client sees, with what differs per request masked."""
    headers = [(name, "*" if name in VARYING else value) for name, value in response.headers.multi_items()]
    return response.status_code, headers, UUID.sub(b'"id":"*"', response.content)


def assert_same(pair, path: str, body, method: str = "POST") -> tuple:
    fast, full = pair
    by_fast, by_full = seen(send(fast.url, path, body, method)), seen(send(full.url, path, body, method))
    assert by_fast == by_full
    return by_fast


@pytest.mark.parametrize("case", CACHED, ids=[c[0] for c in CACHED])
def test_cached_answers_are_byte_identical(pair, case):
    _, path, body = case
    send(pair[1].url, path, body)  # cached by the full path first: both then read the same entries
    status, headers, _ = assert_same(pair, path, body)
    assert status == 200
    assert ("x-cache", "hit") in headers


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_answers_are_byte_identical(pair, case):
    _, method, path, body, status, _ = case
    assert assert_same(pair, path, body, method)[0] == status


@pytest.mark.parametrize("case", OK_CASES, ids=[c[0] for c in OK_CASES])
def test_other_answers_are_byte_identical(pair, case):
    _, path, body, _ = case
    send(pair[1].url, path, body)
    assert assert_same(pair, path, body)[0] == 200


def test_a_miss_is_answered_as_before_and_counted_once(pair, redis):
    """A miss falls through with the fast path's lookup handed over: the same answer, one lookup counted."""
    fast, full = pair
    answers = []
    for server in (fast, full):
        redis_client.Redis.from_url(redis.url).flushall()  # new to Redis for each: a miss (and a partial) on both
        before = metric(server.url, "transformer_cache_lookups_total", model_name="sentiment", outcome="miss")
        send(server.url, V1, {"instances": ["a text nobody sent"]})  # caches it, so the next is a partial
        answers.append(seen(send(server.url, V1, {"instances": ["a text nobody sent", "and another one"]})))
        after = metric(server.url, "transformer_cache_lookups_total", model_name="sentiment", outcome="miss")
        assert after - before == 2
    assert answers[0] == answers[1]
    assert ("x-cache", "partial") in answers[0][1]


@pytest.fixture(scope="module")
def quiet_pair(predictor, redis, tmp_path_factory):
    """The pair with the cache headers off (``--cache_headers false``, the default, as the chart ships it)."""
    logs = tmp_path_factory.mktemp("fastpath-quiet")
    fast = transformer_for(predictor, redis, logs / "fast.log", "--cache_headers", "false").start()
    full = transformer_for(predictor, redis, logs / "full.log", "--cache_headers", "false", "--fast_path",
                           "false").start()
    yield fast, full
    fast.stop()
    full.stop()


def test_without_cache_headers_both_paths_answer_alike_and_tell_nothing(quiet_pair, redis):
    """Hits (the fast path's), a miss and a partial (the full path's): identical, and no header says which."""
    told = {"x-cache", "x-cache-hits", "x-queue-time", "x-tokenization-time", "x-inference-time", "x-compute-tokens",
            "x-compute-characters"}
    for _, path, body in CACHED:
        send(quiet_pair[1].url, path, body)
        status, headers, _ = assert_same(quiet_pair, path, body)
        assert status == 200 and not told & {name for name, _ in headers}, (path, headers)
    for server in quiet_pair:
        redis_client.Redis.from_url(redis.url).flushall()
        for texts in (["a quiet text nobody sent"], ["a quiet text nobody sent", "and a quiet other"]):
            response = send(server.url, V1, {"instances": texts})  # a miss, then a partial
            assert response.status_code == 200 and not told & set(response.headers), response.headers


def test_fast_answers_are_counted_and_logged_as_before(pair):
    """The metrics a hit moves move alike on both paths."""
    body = {"instances": ["counted film", "counted film", "another counted film"]}
    series = [("transformer_cache_lookups_total", {"outcome": "hit"}), ("text_classifier_requests_total",
              {"status": "200"}), ("text_classifier_answers_total", {"model_version": None}),
              ("request_predict_seconds_count", {}), ("text_classifier_request_duration_seconds_count", {})]
    moved = []
    for server in pair:
        send(pair[1].url, V1, body)  # cached
        before = [_total(server.url, name, labels) for name, labels in series]
        send(server.url, V1, body)
        # the request counters move after the answer has gone out (runtime/rest.py): wait for them
        deadline = time.monotonic() + 10
        while _total(server.url, *series[1]) < before[1] + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        moved.append([_total(server.url, name, labels) - b for (name, labels), b in zip(series, before)])
    assert moved[0] == moved[1]
    assert moved[0][0] == 2  # distinct texts looked up
    assert "counted film" not in pair[0].log()  # the access log line holds no text, as before


def _total(url: str, name: str, labels: dict) -> float:
    """Sum of a metric's samples for the served model (labels with None: any value)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(HTTP.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("model_name") == "sentiment" and all(
                    v is None or sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


# -- the layer below ASGI (transformer/fasthttp.py): hits answered in uvicorn's HTTP protocol --------------

LATENCY = re.compile(r" \d+\.\d ms ")
CLOSING = "connection: close"


def test_hits_are_answered_below_asgi_on_the_fast_server_only(pair):
    """The fast server says it answers hits in the protocol (else the tests above compared ASGI with ASGI)."""
    send(pair[1].url, V1, {"instances": ["what a lovely film"]})
    send(pair[0].url, V1, {"instances": ["what a lovely film"]})
    assert "answered in uvicorn's HTTP protocol" in pair[0].log()
    assert "answered in uvicorn's HTTP protocol" not in pair[1].log()


@pytest.mark.parametrize("request_id", ["fixed-id-1", "bad id\u00e9", None], ids=["valid", "replaced", "absent"])
def test_the_access_log_line_and_the_request_id_are_as_before(pair, request_id):
    """The same access-log line (latency aside) on both paths; a valid id echoed, an invalid or absent one made."""
    body = {"instances": ["what a lovely film"]}
    send(pair[1].url, V1, body)
    lines = []
    for server in pair:
        headers = {} if request_id is None else {"x-request-id": request_id.encode()}
        response = HTTP.post(server.url + V1, json=body, headers=headers, timeout=60)
        echoed = response.headers["x-request-id"]
        assert echoed == request_id if request_id == "fixed-id-1" else re.fullmatch(r"[0-9a-f-]{36}", echoed)
        deadline = time.monotonic() + 10
        while f"request_id={echoed}" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = next(line for line in server.log().splitlines() if f"request_id={echoed}" in line)
        lines.append(LATENCY.sub(" * ms ", line.split("contract.access", 1)[-1]).replace(echoed, "*"))
    assert lines[0] == lines[1]


def _raw(port: int, requests: list[bytes]) -> bytes:
    """Everything the server writes back to ``requests`` sent at once on one connection (the last closes it)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(b"".join(requests))
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def _request(body: bytes, close: bool = False, path: str = V1) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-request-id: raw-1\r\n"
            f"content-length: {len(body)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n").encode() + body


def _masked(raw: bytes) -> bytes:
    raw = re.sub(rb"date: [^\r]*", b"date: *", raw)
    return re.sub(rb"x-total-time: [^\r]*", b"x-total-time: *", raw)


def test_pipelined_and_closing_requests_get_the_same_bytes(pair):
    """Hits pipelined on one connection, one the full path answers between them (parameters), the last closing
    it: the bytes on the wire, in order, as before."""
    hit = json.dumps({"instances": ["what a lovely film"]}).encode()
    v2 = json.dumps(v2_body(["what a lovely film"])).encode()
    handed_on = json.dumps({"instances": ["what a lovely film"], "parameters": {"truncation": "head"}}).encode()
    send(pair[1].url, V1, {"instances": ["what a lovely film"]})
    sent = [_request(hit), _request(v2, path=V2), _request(handed_on), _request(hit, close=True)]
    fast, full = (UUID.sub(b'"id":"*"', _masked(_raw(int(server.url.rsplit(":", 1)[1]), sent))) for server in pair)
    assert fast.count(b"HTTP/1.1 200 OK") == 4 and fast.count(b"x-cache: hit") == 4
    assert fast == full
    assert fast.endswith(b"]}") and CLOSING.encode() in fast.rsplit(b"HTTP/1.1", 1)[1]
