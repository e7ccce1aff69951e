"""The shared schema: every protocol's request shape, its 400s, and the response shapes."""

import json

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest

from contract import schema
from contract.errors import ERRORS, ServiceError


def v2(data, datatype="BYTES", shape=None, name="text"):
    shape = [len(data)] if shape is None else shape
    return InferRequest(model_name="m", infer_inputs=[InferInput(name, shape, datatype, data)])


@pytest.mark.parametrize(
    "body, error_type, fragment",
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b'{"instances": ["\\u12"]}', "invalid_json", "not valid JSON"),  # a broken escape: not a surrogate
        (b'{"instances": ["\\ud800"]}', "invalid_text", "lone surrogate"),  # as raw bytes (no JSON content type)
        (b'{"instances": ["a \\udc00 b"]}', "invalid_text", "lone surrogate"),
        ([1, 2], "invalid_request", "is an array"),
        ({}, "invalid_request", 'Missing field "instances"'),
        ({"instances": None}, "invalid_request", "is null"),
        ({"instances": "text"}, "invalid_request", "must be an array of strings"),
        ({"instances": ["ok", None]}, "invalid_request", "instances[1] is null"),
        ({"instances": [42]}, "invalid_request", "instances[0] is a number"),
        ({"instances": [{"text": "x"}]}, "invalid_request", "instances[0] is an object"),
    ],
)
def test_v1_bad_bodies_name_the_problem(body, error_type, fragment):
    with pytest.raises(ServiceError) as caught:
        schema.parse_v1(body)
    assert caught.value.error_type == error_type
    assert fragment in caught.value.message


def test_a_surrogate_pair_escape_is_one_character_not_a_lone_half():
    assert schema.parse_v1(b'{"instances": ["\\ud83d\\ude00"]}') == ["\U0001f600"]
    assert not schema.has_lone_surrogate_escape(b'["\\ud83d\\ude00", "\\u00e9"]')


def test_v1_accepts_any_string_including_empty_numbers_and_emoji():
    texts = ["", "   ", "12345", "😀", "x" * 100_000]
    assert schema.parse_v1({"instances": texts}) == texts
    assert schema.parse_v1(json.dumps({"instances": ["raw bytes body"]}).encode()) == ["raw bytes body"]


def test_v2_accepts_strings_bytes_and_n_by_1_shapes():
    assert schema.parse_v2(v2(["a", "b"])) == ["a", "b"]
    assert schema.parse_v2(v2([b"caf\xc3\xa9"])) == ["café"]
    assert schema.parse_v2(v2([["a"], ["b"]], shape=[2, 1])) == ["a", "b"]
    assert schema.parse_v2(v2([], shape=[0])) == []


@pytest.mark.parametrize(
    "request_, error_type, fragment",
    [
        (v2([1.0], datatype="FP32"), "invalid_tensor", "datatype FP32"),
        (v2(["a"], shape=[3]), "invalid_tensor", "carries 1 texts"),
        (v2(["a", "b"], shape=[1, 2]), "invalid_tensor", "expected [n] or [n, 1]"),
        (v2([None]), "invalid_request", "text[0] is null"),
        (v2([b"\xff\xfe"]), "invalid_text", "not valid UTF-8"),
        (InferRequest(model_name="m", infer_inputs=[]), "invalid_tensor", "exactly one input"),
    ],
)
def test_v2_bad_tensors_name_the_problem(request_, error_type, fragment):
    with pytest.raises(ServiceError) as caught:
        schema.parse_v2(request_)
    assert caught.value.error_type == error_type
    assert fragment in caught.value.message


def test_v1_response_lists_every_label_best_first():
    response = schema.v1_response(np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32), ["NEGATIVE", "POSITIVE"])
    first, second = response["predictions"]
    assert first["label"] == "POSITIVE" and first["score"] == pytest.approx(0.8)
    assert [s["label"] for s in first["scores"]] == ["POSITIVE", "NEGATIVE"]
    assert second["label"] == "NEGATIVE"
    assert [s["label"] for s in second["scores"]] == ["NEGATIVE", "POSITIVE"]


def test_v2_response_has_label_score_and_scores_in_label_order():
    probs = np.array([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]], dtype=np.float32)
    response = schema.v2_response(v2(["a", "b", "c"]), probs, ["NEGATIVE", "POSITIVE"], "m", "v1")
    outputs = {o.name: o for o in response.outputs}
    assert outputs["label"].data == ["POSITIVE", "NEGATIVE", "NEGATIVE"]
    np.testing.assert_allclose(outputs["score"].data, [0.8, 0.9, 0.5])
    assert outputs["scores"].shape == [3, 2]
    assert json.loads(outputs["scores"].parameters["labels"]) == ["NEGATIVE", "POSITIVE"]
    assert response.model_version == "v1" and response.id


def test_every_error_kind_is_a_client_or_server_status():
    for error_type, kind in ERRORS.items():
        assert 400 <= kind.http_status < 600, error_type
        error = ServiceError(error_type, "message")
        assert json.loads(error.details) == {"error": "message", "error_type": error_type}
        assert error.status_code == kind.grpc_status
