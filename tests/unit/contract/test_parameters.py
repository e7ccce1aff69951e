"""Request parameters in V1 bodies (V2 REST and gRPC: tests/unit/runtime/test_codec.py), and the transformer's
cached variants of an answer."""

import numpy as np
import pytest

from contract import schema
from contract.errors import ServiceError
from contract.parameters import Options
from contract.schema import Limits
from transformer.variants import Answer, Variant

LIMITS = Limits(max_texts=10, max_chars=100, max_body_bytes=1024)


def test_v1_parameters_object():
    request = schema.parse_request({"instances": ["a"], "parameters": {"truncation": "chunks",
                                                                       "binary_data_output": True}}, LIMITS)
    assert request.options == Options(truncation="chunks")
    assert schema.parse_request({"instances": ["a"]}, LIMITS).options == Options()


@pytest.mark.parametrize("parameters", [{"truncation": "tail"}, {"granularity": "char"}, {"explain": "maybe"},
                                        {"truncation": 3}, ["head"], {"other": 1}, {"a": {}, "b": {}},
                                        {"binary_data_output": {"x": [1]}}, {"timeout": "9" * 1000}])
def test_wrong_values_are_a_400_that_names_the_choices(parameters):
    with pytest.raises(ServiceError) as caught:
        schema.parse_request({"instances": ["a"], "parameters": parameters}, LIMITS)
    assert caught.value.error_type == "invalid_parameter" and caught.value.http_status == 400


@pytest.mark.parametrize("variant, answer", [
    (Variant("head_tail"), Answer(np.array([0.25, 0.75], np.float32))),
    (Variant("chunks"), Answer(np.array([0.25, 0.75], np.float32), windows=3)),
    (Variant("head", True, "token"), Answer(np.array([0.25, 0.75], np.float32), explanation=b'{"label":"x"}')),
])
def test_cached_variants_round_trip_and_reject_foreign_values(variant, answer):
    encoded = variant.encode(answer)
    decoded = variant.decode(encoded if isinstance(encoded, bytes) else encoded.tobytes(), 2)
    np.testing.assert_array_equal(decoded.probs, answer.probs)
    assert (decoded.windows, decoded.explanation) == (answer.windows, answer.explanation)
    assert variant.decode(b"\x00" * 3, 2) is None and variant.decode(None, 2) is None


def test_each_variant_has_its_own_key_tag_and_head_keeps_the_old_keys():
    tags = {Variant().key_tag, Variant("head_tail").key_tag, Variant("chunks").key_tag,
            Variant("head", True, "word").key_tag, Variant("head", True, "token").key_tag}
    assert len(tags) == 5 and Variant().key_tag == ""
    assert Variant.of(Options(explain=True, truncation="chunks"), "head") == Variant("head", True, "word")
    assert Variant.of(Options(), "chunks") == Variant("chunks")
