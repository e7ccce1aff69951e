"""The V2 codec (runtime/kserve/codec.py): KServe's request objects read with the contract's checks, answers
written as KServe's response objects, and the error table as gRPC statuses (runtime/kserve/errors.py).

Moved from tests/unit/contract/: the contract is data only, and these are the fence's KServe objects.
"""

import json

import numpy as np
import pytest
from grpc import StatusCode
from kserve.protocol.grpc.grpc_predict_v2_pb2 import InferParameter, ModelInferRequest
from kserve.protocol.infer_type import InferInput, InferRequest

from contract.errors import ERRORS, ErrorType, ServiceError
from contract.parameters import Options, parse_options
from contract.schema import Limits
from runtime.kserve import codec
from runtime.kserve.errors import as_grpc

LIMITS = Limits(max_texts=10, max_chars=100, max_body_bytes=1024)


def v2(data, datatype="BYTES", shape=None, name="text"):
    shape = [len(data)] if shape is None else shape
    return InferRequest(model_name="m", infer_inputs=[InferInput(name, shape, datatype, data)])


def test_v2_accepts_strings_bytes_and_n_by_1_shapes():
    assert codec.parse_v2(v2(["a", "b"])) == ["a", "b"]
    assert codec.parse_v2(v2([b"caf\xc3\xa9"])) == ["café"]
    assert codec.parse_v2(v2([["a"], ["b"]], shape=[2, 1])) == ["a", "b"]
    assert codec.parse_v2(v2([], shape=[0])) == []


def test_v2_raw_contents_are_decoded_after_the_header_is_checked():
    grpc = ModelInferRequest(model_name="m", inputs=[ModelInferRequest.InferInputTensor(
        name="text", datatype="BYTES", shape=[2])])
    grpc.raw_input_contents.append(b"".join(len(t).to_bytes(4, "little") + t for t in (b"a", b"bc")))
    assert codec.parse_v2(InferRequest.from_grpc(grpc)) == ["a", "bc"]
    grpc.inputs[0].shape[:] = [3]  # framing for 2 texts, a shape of 3: the decoder's own error, a 400
    with pytest.raises(ServiceError) as caught:
        codec.parse_v2(InferRequest.from_grpc(grpc))
    assert caught.value.error_type == "invalid_tensor" and "raw contents do not decode as BYTES" in caught.value.message
    grpc.inputs[0].datatype = "FP32"  # the header's error comes first, as before the codec moved
    with pytest.raises(ServiceError) as caught:
        codec.parse_v2(InferRequest.from_grpc(grpc))
    assert "datatype FP32" in caught.value.message


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
        codec.parse_v2(request_)
    assert caught.value.error_type == error_type
    assert fragment in caught.value.message


def test_v2_limits_name_the_input():
    with pytest.raises(ServiceError) as caught:
        codec.parse_request(v2(["x" * 101], name="texts"), LIMITS)
    assert caught.value.error_type == "text_too_long" and "texts[0]" in caught.value.message


def test_v1_bodies_go_to_the_contract():
    assert codec.parse_request({"instances": ["a"]}, LIMITS).v2 is None


def test_v2_rest_and_grpc_parameters():
    rest = InferRequest("m", [InferInput("text", [1], "BYTES", ["a"])],
                        parameters={"explain": True, "granularity": "token"})
    assert codec.parse_request(rest, LIMITS).options == Options(explain=True, granularity="token", field_name="text")
    grpc = ModelInferRequest(model_name="m")
    grpc.parameters["truncation"].CopyFrom(InferParameter(string_param="head_tail"))
    grpc.parameters["explain"].CopyFrom(InferParameter(bool_param=False))
    assert parse_options(codec.plain_parameters(grpc.parameters)) == Options(truncation="head_tail")


def test_v2_response_has_label_score_and_scores_in_label_order():
    probs = np.array([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]], dtype=np.float32)
    response = codec.v2_response(v2(["a", "b", "c"]), probs, ["NEGATIVE", "POSITIVE"], "m", "v1")
    outputs = {o.name: o for o in response.outputs}
    assert outputs["label"].data == ["POSITIVE", "NEGATIVE", "NEGATIVE"]
    np.testing.assert_allclose(outputs["score"].data, [0.8, 0.9, 0.5])
    assert outputs["scores"].shape == [3, 2]
    assert json.loads(outputs["scores"].parameters["labels"]) == ["NEGATIVE", "POSITIVE"]
    assert response.model_version == "v1" and response.id


def test_every_error_kind_is_a_client_or_server_status():
    for error_type, kind in ERRORS.items():
        assert 400 <= kind.http_status < 600, error_type
        error = as_grpc(ServiceError(error_type, "message"))
        assert json.loads(error.details) == {"error": "message", "error_type": error_type}
        assert error.status_code == StatusCode[kind.grpc_status]


def test_the_table_names_only_grpc_status_codes():
    """contract/errors.py names each status as text (it imports no grpc): a misspelt one fails here."""
    assert {kind.grpc_status for kind in ERRORS.values()} <= {code.name for code in StatusCode} - {"OK"}


def test_the_grpc_details_are_the_rest_body_byte_for_byte():
    error = ServiceError(ErrorType.INVALID_TEXT, 'caf\u00e9 "quoted"')
    assert as_grpc(error).details == '{"error": "caf\\u00e9 \\"quoted\\"", "error_type": "invalid_text"}'
