"""The adversarial request table, sent to the predictor and to the transformer alike."""

import httpx

from tests.integration.servers import HTTP

V1 = "/v1/models/sentiment:predict"
V2 = "/v2/models/sentiment/infer"


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
    ("too many texts", "POST", V1, {"instances": ["a"] * 1001}, 400, "too_many_texts"),
    ("text too long", "POST", V1, {"instances": ["a", "x" * 100_001]}, 400, "text_too_long"),
    ("body too large", "POST", V1, b'{"instances": ["' + b"x" * (9 * 1024 * 1024) + b'"]}', 413, "payload_too_large"),
    ("invalid utf-8 v1", "POST", V1, b'{"instances": ["\xff\xfe"]}', 400, "invalid_json"),
    ("invalid utf-8 v2", "POST", V2,
     b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["\xff"]}]}', 400, "invalid_json"),
    ("wrong method v1", "GET", V1, None, 405, "method_not_allowed"),
    ("wrong method v2", "GET", V2, None, 405, "method_not_allowed"),
    ("unknown route", "POST", "/v3/whatever", {}, 404, "route_not_found"),
    ("unknown model v1", "POST", "/v1/models/nope:predict", {"instances": ["a"]}, 404, "model_not_found"),
    ("unknown model v2", "POST", "/v2/models/nope/infer", v2_body(["a"]), 404, "model_not_found"),
]

OK_CASES = [
    # (id, path, body, number of answers)
    ("empty v1", V1, {"instances": []}, 0),
    ("empty v2", V2, v2_body([], shape=[0]), 0),
    ("numbers whitespace emoji", V1, {"instances": ["12345", "3.14", " ", "\t\n", "😀", "👍👍👍"]}, 6),
    ("nul bytes and controls", V1, {"instances": ["a\u0000b", "\u0000", "\u001b[31mred"]}, 3),
    ("100k characters", V1, {"instances": ["great " * 16_666]}, 1),
    ("1000 texts", V1, {"instances": [f"review {i}: {'good' if i % 3 else 'bad'} film" for i in range(1000)]}, 1000),
]


def answers(payload: dict) -> int:
    if "predictions" in payload:
        return len(payload["predictions"])
    return next(o["shape"][0] for o in payload["outputs"] if o["name"] == "label")


def send_error_case(base_url: str, case) -> httpx.Response:
    """Send one ERROR_CASES row; assert its status and error_type, and a readable message."""
    _, method, path, body, status, error_type = case
    content = body if isinstance(body, bytes) else None
    response = HTTP.request(method, base_url + path, json=None if content else body, content=content,
                             headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error_type"] == error_type
    assert isinstance(payload["error"], str) and len(payload["error"]) > 10
    return response


def send_ok_case(base_url: str, case) -> None:
    _, path, body, count = case
    response = HTTP.post(base_url + path, json=body, timeout=120)
    assert response.status_code == 200, response.text
    assert answers(response.json()) == count
