"""A client cannot forge access-log lines or smuggle data through the request id (issue 26, item 6)."""

from __future__ import annotations

import re
import time

import grpc
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.integration.adversarial import V1
from tests.integration.servers import HTTP

pytestmark = pytest.mark.integration

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.mark.parametrize("service", ["predictor", "transformer"])
def test_control_characters_are_escaped_and_bad_request_ids_replaced(service, request):
    server = request.getfixturevalue(service)
    forged = "FORGED 200 0.1 ms model=sentiment"
    # A percent-encoded newline in the model name: the path is logged percent-decoded.
    response = HTTP.post(f"{server.url}/v1/models/sentiment%0A{forged.replace(' ', '%20')}:predict",
                         json={"instances": ["a"]})
    assert response.status_code == 404
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))
    tensor = pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1],
                                                   contents=pb.InferTensorContents(bytes_contents=[b"a"]))
    with pytest.raises(grpc.RpcError):
        stub.ModelInfer(pb.ModelInferRequest(model_name=f"sentiment\n{forged}", inputs=[tensor]), timeout=10)
    for bad_id in ("x" * 5000, "<script>alert(1)</script>", "a b"):
        answered = HTTP.post(server.url + V1, json={"instances": ["a"]}, headers={"x-request-id": bad_id})
        assert answered.status_code == 200
        assert UUID.fullmatch(answered.headers["x-request-id"])  # not echoed: replaced with one of ours
    good = HTTP.post(server.url + V1, json={"instances": ["a"]}, headers={"x-request-id": "trace-42.a:b"})
    assert good.headers["x-request-id"] == "trace-42.a:b"
    time.sleep(0.5)  # log lines flushed
    log = server.log()
    lines = log.splitlines()
    forged_lines = [lines[i - 1 : i + 1] for i, line in enumerate(lines) if line.startswith("FORGED")]
    assert not forged_lines
    assert "\\x0aFORGED" in log  # the escaped name is still there to read
    assert "x" * 300 not in log and "<script>" not in log
