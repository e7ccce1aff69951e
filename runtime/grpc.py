"""What the gRPC server adds to KServe's: the access log and metrics of ``ModelInfer``, and a base for interceptors.

The access log is a server interceptor around ``ModelInfer``, innermost, so it sees
our ``ServiceError`` before KServe's interceptor turns it into a status; the
``status`` label is the HTTP status of the same error in the table, so one error
ratio covers both protocols.
"""

from __future__ import annotations

import time

import grpc
from grpc.aio import ServerInterceptor

from contract.errors import ERRORS, ErrorType, ServiceError
from runtime.accesslog import VersionOf, metric_label, record
from runtime.kserve.errors import error_type_of
from runtime.metrics import ERRORS_TOTAL

GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"


class ModelInferInterceptor(ServerInterceptor):
    """Wraps gRPC ``ModelInfer`` calls (every other method passes untouched); subclasses say how."""

    def wrap(self, infer, metadata: dict):
        """An ``async (request, context)`` callable that calls ``infer`` around what the subclass adds."""
        raise NotImplementedError

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method != GRPC_INFER or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self.wrap(handler.unary_unary, dict(details.invocation_metadata or ())),
            request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer,
        )


class GrpcAccessLog(ModelInferInterceptor):
    """The access line, request metrics and error count of every gRPC ``ModelInfer``."""

    def __init__(self, model_version: VersionOf):
        self.model_version = model_version

    def wrap(self, infer, metadata: dict):
        async def observed(request, context):
            started = time.perf_counter()
            status, error_type = 500, None
            try:
                response = await infer(request, context)
                status = 200
                return response
            except Exception as exc:
                error_type = error_type_of(exc)
                status = ERRORS[error_type].http_status
                ERRORS_TOTAL.labels(metric_label(request.model_name, self.model_version), error_type).inc()
                raise
            finally:
                record(request.model_name, self.model_version, "gRPC", "ModelInfer", status,
                       time.perf_counter() - started, metadata.get("x-request-id", "-"), None, error_type)

        return observed


def repository_disabled(what: str) -> ServiceError:
    """KServe's model repository extension is closed here (runtime/rest.py says why)."""
    return ServiceError(ErrorType.ROUTE_NOT_FOUND,
                        f"{what} models is not offered: this server serves the model it started with.")
