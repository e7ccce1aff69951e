"""No word of a text is left in Redis, a log or /metrics, whatever verb or variant asked (issue 26, item 7).

Every verb (V1 ``:predict``, V1 ``:explain``, V2 REST, V2 gRPC) and every cached variant
(``head``, ``head_tail``, ``chunks``, explanations by word and by token) is sent twice,
once to fill the cache and once to be answered from it; the second answer must name the
same words as the first (the transformer rebuilds them from the request).
"""

from __future__ import annotations

import hashlib
import time
import uuid

import grpc
import pytest
import redis as redis_client
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.integration.adversarial import V1, V2, v2_body
from tests.integration.servers import HTTP

pytestmark = pytest.mark.integration

EXPLAIN = "/v1/models/sentiment:explain"
VARIANTS = [({}, V1), ({"truncation": "head_tail"}, V1), ({"truncation": "chunks"}, V1),
            ({}, EXPLAIN), ({"granularity": "token"}, EXPLAIN), ({"explain": True}, V2),
            ({"explain": True, "granularity": "token"}, V2), ({"truncation": "chunks"}, V2)]


def words_of(answer: dict) -> list:
    return [[a["text"] for a in e["attributions"]] for e in answer.get("explanations", [])]


def test_no_word_of_a_text_is_kept_by_any_verb_or_variant(transformer, predictor, redis):
    marker = uuid.uuid4().hex[:12]
    words = [f"zq{marker}", f"diagnosis{marker[:6]}", "confidential"]
    texts = [" ".join(words) + " is what my doctor said", " ".join(words * 40)]  # the second one takes several windows
    for parameters, path in VARIANTS:
        answers = []
        for _ in range(2):  # a miss, then a hit
            body = v2_body(texts) if path == V2 else {"instances": texts}
            if parameters:
                body["parameters"] = parameters
            response = HTTP.post(transformer.url + path, json=body, timeout=60)
            assert response.status_code == 200, (parameters, path, response.text[:300])
            answers.append(response.json())
        if path == EXPLAIN:
            assert words_of(answers[0]) == words_of(answers[1]) and words_of(answers[0])[0][0]  # rebuilt words
            assert answers[0] == answers[1]
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(transformer.grpc_target))
    tensor = pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[len(texts)],
                                                   contents=pb.InferTensorContents(bytes_contents=[t.encode()
                                                                                                   for t in texts]))
    request = pb.ModelInferRequest(model_name="sentiment", inputs=[tensor])
    request.parameters["explain"].bool_param = True
    stub.ModelInfer(request, timeout=30)
    time.sleep(0.5)  # log lines flushed
    pieces = [marker, marker[:6], "confidential", "diagnosis", "doctor"]
    for server in (transformer, predictor):
        log, metrics = server.log(), HTTP.get(server.url + "/metrics").text
        assert not [p for p in pieces if p in log or p in metrics]
    store = redis_client.Redis.from_url(redis.url)
    keys = store.keys("*")
    assert len(keys) == 2 * 5  # both texts under each cached variant: head, head_tail, chunks, eword, etoken
    for key in keys:
        value = store.get(key) or b""
        assert not [p for p in pieces if p.encode() in key or p.encode() in value], key
        assert b'"text"' not in value  # explanations are kept as contributions and offsets only
        # no hash a guessed text gives without the key (the unkeyed BLAKE2b of keys before issue 26)
        assert not [t for t in texts if hashlib.blake2b(t.encode(), digest_size=16).hexdigest().encode() in key]
