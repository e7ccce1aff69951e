"""Requests that are small on the wire but costly to serve (issue 26), against the real services.

Each is sent twice and must get its answer quickly while the process's RSS grows by less
than a stated bound; then an ordinary request must still be answered. The bounds are
far below what the unfixed services took (measured with this file's requests on the
same harness; BENCHMARKS.md, "Hostile input") and far above what allocator noise can add.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.integration.adversarial import V1, V2, v2_body
from tests.integration.servers import HTTP, rss_mb

pytestmark = pytest.mark.integration

# 80 texts of 99,990 one-token characters: 8 MB, under --max_body_bytes, --max_texts and
# --max_chars. Tokenized whole they were 8 million token ids (about 1.3 GB in the predictor).
ONE_TOKEN_CHARS = "!" * 99_990
FLOOD = [ONE_TOKEN_CHARS] * 80
RSS_BOUND_MB = 300  # growth over both requests; whole-text tokenization took well over a gigabyte


def post(url: str, body: dict):
    started = time.monotonic()
    response = HTTP.post(url, json=body, timeout=60)
    return response, time.monotonic() - started


@pytest.mark.parametrize("truncation, status, error_type", [
    ("chunks", 400, "too_many_windows"),  # refused after tokenizing a few windows' worth of each text
    ("head_tail", 200, None),
    ("head", 200, None),  # the plain path: the first row of each text, tokenized on the inference thread
])
def test_a_flood_of_one_token_characters_is_bounded_in_memory(predictor, truncation, status, error_type):
    before = rss_mb(predictor)
    for _ in range(2):
        response, seconds = post(predictor.url + V1, {"instances": FLOOD, "parameters": {"truncation": truncation}})
        assert response.status_code == status, response.text[:300]
        if error_type:
            assert response.json()["error_type"] == error_type
        else:
            assert len(response.json()["predictions"]) == len(FLOOD)
        assert seconds < 30, seconds  # a bound a busy machine cannot break; unbounded work took minutes
    growth = rss_mb(predictor) - before
    assert growth < RSS_BOUND_MB, f"RSS grew by {growth:.0f} MB"
    assert HTTP.post(predictor.url + V1, json={"instances": ["still fine"]}).status_code == 200


SURROGATE = '{"instances": ["fine", "bad \\ud800 text"]}'


@pytest.mark.parametrize("service", ["predictor", "transformer"])
def test_a_lone_surrogate_is_a_400_invalid_text(service, request):
    server = request.getfixturevalue(service)
    v2 = '{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["\\udfff"]}]}'
    v2_at_end = '{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["\\ud800"]}]}'
    # With and without a JSON content type (curl -d and tritonclient.http send none): other parsers then.
    for content_type in ("application/json", "application/x-www-form-urlencoded"):
        for path, body in [(V1, SURROGATE), (V1, '{"instances": ["\\ud800"]}'), (V2, v2), (V2, v2_at_end)]:
            response = HTTP.post(server.url + path, content=body, headers={"content-type": content_type})
            assert response.status_code == 400, response.text[:300]
            assert response.json()["error_type"] == "invalid_text", (content_type, body, response.text[:300])
    assert HTTP.post(server.url + V2, json=v2_body(["still fine"])).status_code == 200


# 8 MiB of empty objects under an ignored name: about 190 MB of Python objects once parsed.
EMPTY_OBJECTS = (b'{"instances": ["a"], "parameters": {"truncation": "head", "x": [' + b"{}," * 2_700_000
                 + b'{}]}}')


@pytest.mark.parametrize("service", ["predictor", "transformer"])
def test_ignored_json_is_refused_before_it_is_parsed(service, request):
    server = request.getfixturevalue(service)
    before = rss_mb(server)
    for _ in range(3):
        started = time.monotonic()
        response = HTTP.post(server.url + V1, content=EMPTY_OBJECTS, headers={"content-type": "application/json"},
                             timeout=60)
        assert response.status_code == 413 and response.json()["error_type"] == "payload_too_large", response.text
        assert time.monotonic() - started < 10
    assert rss_mb(server) - before < 100  # the body itself, buffered once; parsed it was ~190 MB a request
    unknown = HTTP.post(server.url + V1, json={"instances": ["a"], "parameters": {"truncaton": "chunks"}})
    assert unknown.status_code == 400 and unknown.json()["error_type"] == "invalid_parameter"
    assert "truncaton" in unknown.json()["error"]


def test_a_worker_serves_at_most_max_inflight_requests_at_once(transformer):
    """Requests whose bodies never finish hold their place; past the cap the answer is 429 at once."""
    from runtime.guard import MAX_INFLIGHT

    def hold() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", transformer.http_port), timeout=10)
        sock.sendall(f"POST {V1} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     "content-length: 100\r\n\r\n{".encode())
        return sock

    held = []
    try:
        held = [hold() for _ in range(MAX_INFLIGHT)]
        # One more held request per ordinary one answered: a request answered just before may still
        # have held its place for a moment when one of the first ones came, which then got a 429.
        deadline = time.monotonic() + 60
        while (response := HTTP.post(transformer.url + V1, json={"instances": ["a"]})).status_code == 200:
            assert time.monotonic() < deadline and len(held) < 2 * MAX_INFLIGHT, "the cap was never reached"
            held.append(hold())
            time.sleep(0.1)
        assert response.status_code == 429 and response.json()["error_type"] == "overloaded"
        assert response.headers["retry-after"] == "1"
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 20  # the held places are given back when their clients go
    while HTTP.post(transformer.url + V1, json={"instances": ["a"]}).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
