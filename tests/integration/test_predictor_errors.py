"""The adversarial table against the real predictor: clear 4xx with error and error_type, never a 500."""

import json

import httpx
import pytest

from tests.integration.servers import ServerProcess, triton_grpc_infer

pytestmark = pytest.mark.integration

V1 = "/v1/models/sentiment:predict"
V2 = "/v2/models/sentiment/infer"
JSON = {"content-type": "application/json"}


def v2_body(data, datatype="BYTES", shape=None):
    return {"inputs": [{"name": "text", "datatype": datatype, "shape": [len(data)] if shape is None else shape,
                        "data": data}]}


ERROR_CASES = [
    # (id, method, path, json body or raw bytes, status, error_type)
    ("null instances", "POST", V1, {"instances": None}, 400, "invalid_request"),
    ("missing field", "POST", V1, {"texts": ["a"]}, 400, "invalid_request"),
    ("null item", "POST", V1, {"instances": ["a", None]}, 400, "invalid_request"),
    ("number item", "POST", V1, {"instances": [3.14]}, 400, "invalid_request"),
    ("invalid json v1", "POST", V1, b'{"instances": [', 400, "invalid_json"),
    ("invalid json v2", "POST", V2, b'{"inputs": [', 400, "invalid_json"),
    ("v2 missing fields", "POST", V2, {"inputs": [{"name": "text"}]}, 400, "invalid_request"),
    ("v2 null inputs", "POST", V2, {"inputs": None}, 400, "invalid_request"),
    ("v2 wrong datatype", "POST", V2, v2_body([1.5], datatype="FP32"), 400, "invalid_tensor"),
    ("v2 wrong shape", "POST", V2, v2_body(["a"], shape=[2]), 400, "invalid_tensor"),
    ("v2 null text", "POST", V2, v2_body([None]), 400, "invalid_request"),
    ("v2 two inputs", "POST", V2, {"inputs": v2_body(["a"])["inputs"] * 2}, 400, "invalid_tensor"),
    ("wrong method v1", "GET", V1, None, 405, "method_not_allowed"),
    ("wrong method v2", "GET", V2, None, 405, "method_not_allowed"),
    ("unknown route", "POST", "/v3/whatever", {}, 404, "route_not_found"),
    ("unknown model v1", "POST", "/v1/models/nope:predict", {"instances": ["a"]}, 404, "model_not_found"),
    ("unknown model v2", "POST", "/v2/models/nope/infer", v2_body(["a"]), 404, "model_not_found"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_bad_requests_get_a_clear_4xx(predictor, case):
    _, method, path, body, status, error_type = case
    content = body if isinstance(body, bytes) else None
    response = httpx.request(method, predictor.url + path, json=None if content else body, content=content,
                             headers=JSON, timeout=30)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error_type"] == error_type
    assert isinstance(payload["error"], str) and len(payload["error"]) > 10


@pytest.mark.parametrize("path, body", [(V1, {"instances": []}), (V2, v2_body([], shape=[0]))], ids=["v1", "v2"])
def test_empty_batch_is_an_empty_answer(predictor, path, body):
    response = httpx.post(predictor.url + path, json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload.get("predictions", []) == [] and all(o["data"] == [] for o in payload.get("outputs", []))


def test_numbers_whitespace_and_emoji_are_classified_like_any_text(predictor):
    texts = ["12345", "3.14", " ", "\t\n", "😀", "👍👍👍"]
    predictions = httpx.post(predictor.url + V1, json={"instances": texts}).json()["predictions"]
    assert len(predictions) == len(texts) and all(p["label"] in ("NEGATIVE", "POSITIVE") for p in predictions)


def test_a_100k_character_text_is_truncated_not_rejected(predictor):
    response = httpx.post(predictor.url + V1, json={"instances": ["great " * 16_667]}, timeout=60)
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1


def test_a_thousand_texts_in_one_request(predictor):
    texts = [f"review {i}: {'good' if i % 3 else 'bad'} film" for i in range(1000)]
    response = httpx.post(predictor.url + V1, json={"instances": texts}, timeout=120)
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1000


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
        texts = ["a long review that keeps going " * 60] * 2000
        response = httpx.post(server.url + V1, json={"instances": texts}, timeout=60)
        assert response.status_code == 504
        assert response.json()["error_type"] == "timeout"
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200  # still serving
        assert httpx.post(server.url + V1, json={"instances": ["short"]}).status_code in (200, 504)
    finally:
        server.stop()


def test_v2_json_without_a_json_content_type_is_accepted(predictor):
    """curl -d and tritonclient.http send no JSON content type; the body is still JSON."""
    body = b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["fine"]}]}'
    for headers in ({}, {"content-type": "application/x-www-form-urlencoded"}, {"content-type": "text/plain"}):
        response = httpx.post(predictor.url + V2, content=body, headers=headers)
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
    response = httpx.post(predictor.url + V2, content=body, headers={"inference-header-content-length": header})
    assert response.status_code == 400, response.text
    assert response.json()["error_type"] == error_type


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b'"text"', b"{\"instances\": [" * 5000 + b"]" * 5000])
def test_degenerate_v1_bodies(predictor, body):
    response = httpx.post(predictor.url + V1, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["error_type"] in ("invalid_json", "invalid_request")
