"""One access-log line and the request metrics for every inference request, REST and gRPC.

REST: pure ASGI middleware, the outermost of ours, so it also sees the answers of the
body limit and of the error handlers, and adds ``x-total-time`` (contract/timings.py). Only inference routes (``:predict``,
``:explain``, ``/infer``) are logged and counted: health checks and scrapes would drown
them. Every request leaves with an ``x-request-id``: the client's, else one made here
and put on the request too, so the model code, the predictor it calls and this line
all share it.

gRPC: a server interceptor around ``ModelInfer``, innermost, so it sees our
``ServiceError`` before KServe turns it into a status; the ``status`` label is the HTTP
status of the same error in the table, so one error ratio covers both protocols.

The line holds ids, status, latency and the cache outcome, never a text. A model name
this server does not serve is logged, but counted as ``model_name=""`` so that
clients cannot mint label values.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

import grpc
from grpc.aio import ServerInterceptor

from contract import timings
from contract.errors import ERRORS, error_type_of
from contract.metrics import ERRORS as ERRORS_TOTAL
from contract.metrics import REQUEST_SECONDS, REQUESTS

logger = logging.getLogger("contract.access")

INFERENCE_ROUTE = re.compile(r"^/v[12]/models/(?P<model>[^/:]+)(?::(?:predict|explain)|(?:/versions/[^/]+)?/infer)$")
REQUEST_ID = b"x-request-id"
TOTAL_TIME = timings.TOTAL_TIME.encode()
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"

VersionOf = Callable[[str], str | None]  # the version a served model reports; LookupError if not served


def metric_label(model: str, version_of: VersionOf) -> str:
    """``model`` if this server serves it, else "" (a label value per unknown name would grow without bound)."""
    try:
        version_of(model)
    except LookupError:
        return ""
    return model


def record(model: str, version_of: VersionOf, method: str, path: str, status: int, seconds: float,
           request_id: str, cache: str | None, error_type: str | None = None) -> None:
    """Count and time one request, and write its access-log line."""
    label = metric_label(model, version_of)
    version = version_of(model) if label else None
    REQUESTS.labels(label, str(status)).inc()
    REQUEST_SECONDS.labels(label).observe(seconds)
    logger.info(
        "%s %s %d %.1f ms model=%s model_version=%s cache=%s request_id=%s",
        method, path, status, seconds * 1000, model, version, cache or "-", request_id,
        extra={"request_id": request_id, "model": model, "model_version": version, "method": method, "path": path,
               "status": status, "latency_ms": round(seconds * 1000, 2), "cache": cache, "error_type": error_type},
    )


class AccessLog:
    def __init__(self, app, model_version: VersionOf):
        self.app = app
        self.model_version = model_version

    async def __call__(self, scope, receive, send):
        route = INFERENCE_ROUTE.match(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        request_id = dict(scope["headers"]).get(REQUEST_ID, b"").decode("latin-1")
        if not request_id:
            request_id = str(uuid.uuid4())
            scope = {**scope, "headers": [*scope["headers"], (REQUEST_ID, request_id.encode())]}
        answer = {"status": 500, "cache": None}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                answer["status"] = message["status"]
                answer["cache"] = headers.get(b"x-cache", b"").decode("latin-1") or None
                added = [(TOTAL_TIME, timings.ms(time.perf_counter() - started).encode())]
                if REQUEST_ID not in headers:
                    added.append((REQUEST_ID, request_id.encode()))
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record(route["model"], self.model_version, scope["method"], scope["path"], answer["status"],
                   time.perf_counter() - started, request_id, answer["cache"],
                   scope.get("state", {}).get("error_type"))  # noted by contract/errors.py


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
