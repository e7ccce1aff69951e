"""What the cache tells a client, and what its keys tell whoever reads Redis (issue 26, item 8).

Real transformers, one real predictor and one real Redis:

- by default no header says whether a text was a hit (``x-cache``, ``x-cache-hits``, or the
  predictor's timings, present only when texts were computed), on REST (fast path and full
  path) and gRPC; ``--cache_headers true`` turns them on;
- each release keys texts with its own secret and puts its name in the key's prefix: a second
  release on the same Redis gets a miss for a text the first has cached;
- no key carries a hash anyone can compute from a guessed text (the unkeyed BLAKE2b keys held
  until issue 26).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis as redis_client

from tests.integration.adversarial import V1, V2, v2_body
from tests.integration.servers import HTTP, metric, transformer_for

pytestmark = pytest.mark.integration

TOLD = {"x-cache", "x-cache-hits", "x-queue-time", "x-tokenization-time", "x-inference-time", "x-compute-tokens",
        "x-compute-characters"}
GRPC_CALL = """
import json, sys
import grpc
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb, grpc_predict_v2_pb2_grpc as pb_grpc
stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(sys.argv[1]))
tensor = pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1],
    contents=pb.InferTensorContents(bytes_contents=[sys.argv[2].encode()]))
_, call = stub.ModelInfer.with_call(pb.ModelInferRequest(model_name="sentiment", inputs=[tensor]), timeout=30)
print(json.dumps(sorted(key for key, _ in call.initial_metadata())))
"""


def grpc_metadata(target: str, text: str) -> set[str]:
    """The initial metadata's keys of a gRPC call, from a process of its own (the kserve/tritonclient clash)."""
    done = subprocess.run([sys.executable, "-c", GRPC_CALL, target, text], capture_output=True, text=True,
                          timeout=60, check=True, cwd=Path(__file__).parents[2])
    return set(json.loads(done.stdout))


def unkeyed(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest().encode()


@pytest.fixture(scope="module")
def releases(predictor, redis, tmp_path_factory):
    """Two releases on one Redis, each with its secret and name; the first as shipped (no --cache_headers)."""
    logs = tmp_path_factory.mktemp("releases")
    first = transformer_for(predictor, redis, logs / "first.log", cache_headers=False,
                            env={"CACHE_KEY_SECRET": "first release's secret", "CACHE_KEY_RELEASE": "first"}).start()
    second = transformer_for(predictor, redis, logs / "second.log",
                             env={"CACHE_KEY_SECRET": "second release's secret", "CACHE_KEY_RELEASE": "second"}).start()
    yield first, second
    first.stop()
    second.stop()


def test_by_default_no_answer_tells_a_hit_from_a_miss(releases):
    quiet = releases[0]
    text = f"was this sent before {uuid.uuid4().hex}"
    for _ in range(2):  # a miss (full path), then a hit (fast path)
        for path, body in ((V1, {"instances": [text]}), (V2, v2_body([text]))):
            response = HTTP.post(quiet.url + path, json=body, timeout=30)
            assert response.status_code == 200 and "x-request-id" in response.headers
            assert not TOLD & set(response.headers), response.headers
    assert metric(quiet.url, "transformer_cache_lookups_total", model_name="sentiment", outcome="hit") >= 2
    assert not TOLD & grpc_metadata(quiet.grpc_target, text)  # a hit on gRPC
    assert not TOLD & grpc_metadata(quiet.grpc_target, f"a gRPC miss {uuid.uuid4().hex}")
    assert "No CACHE_KEY_SECRET" not in quiet.log()  # it has one


def test_with_cache_headers_they_say_hit_and_miss(releases):
    loud = releases[1]
    text = f"tell me {uuid.uuid4().hex}"
    first = HTTP.post(loud.url + V1, json={"instances": [text]}, timeout=30)
    again = HTTP.post(loud.url + V1, json={"instances": [text]}, timeout=30)
    assert first.headers["x-cache"] == "miss" and "x-compute-tokens" in first.headers
    assert again.headers["x-cache"] == "hit" and again.headers["x-cache-hits"] == "1"
    assert {"x-cache", "x-cache-hits"} <= grpc_metadata(loud.grpc_target, text)


def test_releases_on_one_redis_share_no_entry_and_keys_hold_no_guessable_hash(releases, redis):
    first, second = releases
    text = f"a text the first release has seen {uuid.uuid4().hex}"
    assert HTTP.post(first.url + V1, json={"instances": [text]}, timeout=30).status_code == 200
    answer = HTTP.post(second.url + V1, json={"instances": [text]}, timeout=30)
    assert answer.status_code == 200 and answer.headers["x-cache"] == "miss"  # not the first release's entry
    assert HTTP.post(second.url + V1, json={"instances": [text]}, timeout=30).headers["x-cache"] == "hit"
    keys = redis_client.Redis.from_url(redis.url).keys("*")
    assert {key.split(b":")[1] for key in keys} == {b"first", b"second"}
    assert not [key for key in keys if unkeyed(text) in key]
    digests = {release: {key.rsplit(b":", 1)[1] for key in keys if key.startswith(b"tc:%s:" % release)}
               for release in (b"first", b"second")}
    assert not digests[b"first"] & digests[b"second"]  # the same text hashes apart under the two secrets


def test_without_a_secret_the_dev_key_is_used_with_a_warning(transformer):
    assert "No CACHE_KEY_SECRET" in transformer.log()
