"""Property tests of the shared schema: whatever a client sends, parsing ends in texts or in a table error.

Any other exception would be a 500 on both services. The HTTP-level fuzzing of the
running services is tests/integration/test_fuzz.py.
"""

import json

import pydantic
import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve.errors import InferenceError, InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.rest.v2_datamodels import InferenceRequest

from contract.errors import ERRORS, ServiceError
from contract.schema import Limits
from runtime.kserve.codec import parse_request  # the face's parse: V1 by the contract, V2 by the codec
from runtime.kserve.dataplane import DataPlane

LIMITS = Limits(max_texts=50, max_chars=200, max_body_bytes=8 * 1024 * 1024)
DATAPLANE = DataPlane(model_registry=ModelRepository())
# database=None: nothing written into the checkout (.hypothesis/); every run draws its examples afresh.
SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
texts = st.lists(st.text(max_size=250), max_size=60)  # around the limits, both sides
v1_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"instances": st.one_of(texts, json_values)}),
    st.fixed_dictionaries({"instances": st.lists(st.one_of(st.text(max_size=5), json_values), max_size=5)}),
)


def check(payload):
    """Parse; the only acceptable failure is a ServiceError of the table with a 4xx status."""
    try:
        request = parse_request(payload, LIMITS)
    except ServiceError as exc:
        assert exc.error_type in ERRORS and 400 <= exc.http_status < 500
        return None
    assert len(request.texts) <= LIMITS.max_texts
    assert all(isinstance(t, str) and len(t) <= LIMITS.max_chars for t in request.texts)
    return request


@SETTINGS
@given(v1_bodies)
def test_any_v1_json_body_is_texts_or_a_4xx(body):
    check(body)


@SETTINGS
@given(st.binary(max_size=300) | v1_bodies.map(lambda body: json.dumps(body).encode()))
def test_any_v1_raw_body_is_texts_or_a_4xx(raw):
    check(raw)  # a non-JSON content type reaches preprocess as bytes


@SETTINGS
@given(texts)
def test_valid_v1_texts_come_back_in_order(items):
    request = check({"instances": items})
    if request is not None:
        assert request.texts == items


v2_data = st.one_of(
    st.lists(st.one_of(st.text(max_size=250), st.integers(), st.none(), st.binary(max_size=10)), max_size=60),
    st.lists(st.lists(st.text(max_size=10), max_size=2), max_size=5),
    json_values,
)
v2_inputs = st.fixed_dictionaries({
    "name": st.sampled_from(["text", "other"]),
    "datatype": st.sampled_from(["BYTES", "FP32", "INT64", "bytes"]),
    "shape": st.lists(st.integers(min_value=-2, max_value=70), max_size=3),
    "data": v2_data,
})
v2_bodies = st.fixed_dictionaries({"inputs": st.lists(v2_inputs, max_size=3)},
                                  optional={"id": st.text(max_size=5), "parameters": json_values})


@SETTINGS
@given(v2_bodies)
def test_any_v2_body_is_texts_or_a_4xx(body):
    # The services' path: FastAPI's pydantic model (its errors are 400 invalid_request), then
    # our DataPlane's decoding (KServe's InvalidInput and InferenceError are 400s), then the schema.
    try:
        request = DATAPLANE.decode_inference_request(InferenceRequest.model_validate(body), {}, "sentiment")
    except (pydantic.ValidationError, RequestValidationError, InvalidInput, InferenceError):
        return
    except ServiceError as exc:
        assert 400 <= exc.http_status < 500
        return
    check(request)


@pytest.mark.parametrize("depth", [100, 5000])
def test_deeply_nested_json_is_a_4xx(depth):
    check(b"[" * depth + b"]" * depth)
    check(b'{"instances": ' + b"[" * depth + b"]" * depth + b"}")
