"""Requests that are small on the wire but costly to serve (issue 26), against the real services.

Each is sent twice and must get its answer quickly while the process's RSS grows by less
than a stated bound; then an ordinary request must still be answered. The bounds are
far below what the unfixed services took (measured with this file's requests on the
same harness; BENCHMARKS.md, "Hostile input") and far above what allocator noise can add.
"""

from __future__ import annotations

import time

import psutil
import pytest

from tests.integration.adversarial import V1, V2, v2_body
from tests.integration.servers import HTTP, ServerProcess, transformer_for

pytestmark = pytest.mark.integration

# 80 texts of 99,990 one-token characters: 8 MB, under --max_body_bytes, --max_texts and
# --max_chars. Tokenized whole they were 8 million token ids (about 1.3 GB in the predictor).
ONE_TOKEN_CHARS = "!" * 99_990
FLOOD = [ONE_TOKEN_CHARS] * 80
RSS_BOUND_MB = 300  # growth over both requests; whole-text tokenization took well over a gigabyte


@pytest.fixture(scope="module")
def transformer(predictor, redis, tmp_path_factory):
    server = transformer_for(predictor, redis, tmp_path_factory.mktemp("logs") / "transformer.log").start()
    yield server
    server.stop()


def rss_mb(server: ServerProcess) -> float:
    return psutil.Process(server.process.pid).memory_info().rss / 2**20


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
    for path, body in [(V1, SURROGATE), (V2, '{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], '
                                             '"data": ["\\udfff"]}]}')]:
        response = HTTP.post(server.url + path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text[:300]
        assert response.json()["error_type"] == "invalid_text"
    assert HTTP.post(server.url + V2, json=v2_body(["still fine"])).status_code == 200
