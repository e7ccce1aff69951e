"""The adversarial table against the real predictor: clear 4xx with error and error_type, never a 500."""

import json

import pytest

from tests.integration.adversarial import ERROR_CASES, OK_CASES, V1, V2, send_error_case, send_ok_case
from tests.integration.servers import HTTP, ServerProcess, triton_grpc_infer

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("case", ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_bad_requests_get_a_clear_4xx(predictor, case):
    send_error_case(predictor.url, case)


@pytest.mark.parametrize("case", OK_CASES, ids=[case[0] for case in OK_CASES])
def test_hard_but_valid_requests_are_answered(predictor, case):
    send_ok_case(predictor.url, case)


def test_grpc_errors_carry_the_error_table(predictor):
    result = triton_grpc_infer(predictor.grpc_target, "sentiment", [{"hex": b"\xff\xfe bad".hex()}])
    assert result["status"] == "StatusCode.INVALID_ARGUMENT"
    assert json.loads(result["message"])["error_type"] == "invalid_text"
    assert triton_grpc_infer(predictor.grpc_target, "nope", ["a"])["status"] == "StatusCode.NOT_FOUND"


def test_deadline_answers_504_instead_of_hanging(tiny_model_dir, tmp_path):
    server = ServerProcess(
        "predictor",
        ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir), "--request_timeout_s", "0.05"],
        tmp_path / "slow.log",
    ).start()
    try:
        texts = ["a long review that keeps going " * 60] * 1000
        response = HTTP.post(server.url + V1, json={"instances": texts}, timeout=60)
        assert response.status_code == 504
        assert response.json()["error_type"] == "timeout"
        assert HTTP.get(server.url + "/v2/health/ready").status_code == 200  # still serving
        assert HTTP.post(server.url + V1, json={"instances": ["short"]}).status_code in (200, 504)
    finally:
        server.stop()


def test_v2_json_without_a_json_content_type_is_accepted(predictor):
    """curl -d and tritonclient.http send no JSON content type; the body is still JSON."""
    body = b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}]}'
    for headers in ({}, {"content-type": "application/x-www-form-urlencoded"}, {"content-type": "text/plain"}):
        response = HTTP.post(predictor.url + V2, content=body, headers=headers)
        assert response.status_code == 200, (headers, response.text)


@pytest.mark.parametrize(
    "body, header, error_type",
    [
        (b"not json at all", "15", "invalid_json"),
        (b'{"id": "x"}', "11", "invalid_request"),  # binary extension header JSON without "inputs"
        (b'{"inputs": [{"name": "t"}]}', "27", "invalid_request"),
    ],
    ids=["garbage", "no-inputs", "input-without-fields"],
)
def test_malformed_binary_v2_requests(predictor, body, header, error_type):
    response = HTTP.post(predictor.url + V2, content=body, headers={"inference-header-content-length": header})
    assert response.status_code == 400, response.text
    assert response.json()["error_type"] == error_type


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b'"text"', b"{\"instances\": [" * 5000 + b"]" * 5000])
def test_degenerate_v1_bodies(predictor, body):
    response = HTTP.post(predictor.url + V1, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["error_type"] in ("invalid_json", "invalid_request")
