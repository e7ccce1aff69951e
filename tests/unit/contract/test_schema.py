"""The shared schema: every protocol's request shape, its 400s, and the response shapes."""

import json

import numpy as np
import pytest

from contract import schema
from contract.errors import ServiceError


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


def test_v1_response_lists_every_label_best_first():
    response = schema.v1_response(np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32), ["NEGATIVE", "POSITIVE"])
    first, second = response["predictions"]
    assert first["label"] == "POSITIVE" and first["score"] == pytest.approx(0.8)
    assert [s["label"] for s in first["scores"]] == ["POSITIVE", "NEGATIVE"]
    assert second["label"] == "NEGATIVE"
    assert [s["label"] for s in second["scores"]] == ["NEGATIVE", "POSITIVE"]


def test_the_client_header_is_read_the_same_from_rest_bytes_and_grpc_strings():
    long = "c" * (schema.CLIENT_HEADER_MAX + 10)
    assert schema.client_of(b"storm") == schema.client_of("storm") == "storm"
    assert schema.client_of(long.encode()) == schema.client_of(long) == long[: schema.CLIENT_HEADER_MAX]
    assert schema.client_of(None) is schema.client_of(b"") is schema.client_of("") is None
