"""A predictor's gRPC error reaches the transformer's client as the error the predictor raised.

The predictor sends a ServiceError as the table's status code with the error body as details
(runtime/kserve/errors.py, ``as_grpc``); the transformer's client (transformer/upstream.py,
``PredictorClient._grpc_error``) reads it back by the same table, now keyed by status names.
"""

import grpc
import pytest

from contract.errors import ERRORS, ErrorType, ServiceError
from runtime.kserve.client import PredictorConfig
from runtime.kserve.errors import as_grpc
from transformer.upstream import PredictorClient


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


CLIENT = PredictorClient(PredictorConfig("predictor:8081", "grpc-v2", predictor_request_timeout_seconds=5))


@pytest.mark.parametrize("error_type", sorted(ERRORS))
def test_the_predictors_error_comes_back_as_itself(error_type):
    sent = as_grpc(ServiceError(error_type, "the predictor's words"))
    got = CLIENT._grpc_error(FakeRpcError(sent.status_code, sent.details))
    if sent.status_code == grpc.StatusCode.UNAVAILABLE:  # cannot tell a down predictor from a loading one
        assert got.error_type == ErrorType.PREDICTOR_UNAVAILABLE
    elif sent.status_code == grpc.StatusCode.DEADLINE_EXCEEDED:
        assert got.error_type == ErrorType.TIMEOUT
    else:
        assert (got.error_type, got.message) == (error_type, "the predictor's words")


def test_a_status_without_the_table_is_a_bad_gateway_with_the_status_of_its_code():
    got = CLIENT._grpc_error(FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "not our JSON"))
    assert got.error_type == ErrorType.BAD_GATEWAY and got.message == "The predictor answered 400: not our JSON"
