"""Fuzz both running services with schemathesis, from their own OpenAPI description (``/openapi.json``).

Every operation is called with generated path parameters, query strings, headers and
bodies (V2 ``InferenceRequest`` from its schema). KServe's V1 routes take the raw
request, so their description has no body; the V1 body is added to the description
here. The properties: never a 5xx (but the table's 501 ``not_implemented`` for the
routes KServe has and this service does not implement), never a hang, and every error
body has ``error`` and ``error_type``. ``FUZZ_EXAMPLES`` (default 25) sets the examples per operation;
``make chaos`` runs more.
"""

from __future__ import annotations

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.servers import HTTP, RedisProcess, transformer_for

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
V1_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["instances"],
        "properties": {"instances": {"type": "array", "maxItems": 40, "items": {"type": "string", "maxLength": 300}}},
    }}},
}


@pytest.fixture(scope="module")
def transformer(predictor, tmp_path_factory):
    redis = RedisProcess(tmp_path_factory.mktemp("redis") / "redis.log").start()
    server = transformer_for(predictor, redis, tmp_path_factory.mktemp("logs") / "transformer.log").start()
    yield server
    server.stop()
    redis.stop()


def described(url: str) -> dict:
    description = HTTP.get(f"{url}/openapi.json", timeout=10).json()
    for path, operations in description["paths"].items():
        if path.endswith((":predict", ":explain")) and "post" in operations:
            operations["post"]["requestBody"] = V1_BODY
    return description


def check(case, response: httpx.Response | object) -> None:
    status = response.status_code
    where = f"{case.method} {case.formatted_path}"
    body = response.json() if status >= 400 else {}
    # 501 not_implemented is the table's answer for the KServe routes this service does not
    # implement (`:explain`, explicit model versions): a decision, not a failure.
    assert status < 500 or body.get("error_type") == "not_implemented", f"{where} answered {status}: {response.text[:500]}"
    if status >= 400:
        assert isinstance(body.get("error"), str) and body.get("error_type"), f"{where}: {body}"


@pytest.mark.parametrize("service", ["predictor", "transformer"])
def test_no_generated_request_gets_a_5xx_or_an_error_without_a_type(service, request):
    server = request.getfixturevalue(service)
    schema = schemathesis.openapi.from_dict(described(server.url))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/v2/models/{model_name}/infer" for op in operations)
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case):
            if "model_name" in (case.path_parameters or {}) and len(case.path_parameters["model_name"]) % 4:
                case.path_parameters["model_name"] = "sentiment"  # mostly the served model, sometimes any name
            response = case.call(base_url=server.url, timeout=15)
            check(case, response)

        call()
