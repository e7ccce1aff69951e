"""What the REST server adds to KServe's: the error table's answers, the access log, the body limit, our routes.

Every REST error answer, from a handler or from ASGI middleware, goes through
``error_response``: it is counted in ``text_classifier_errors_total{model_name,
error_type}`` (``model_name`` only for a model this server serves, so a client cannot
mint label values) and its type is noted on the request for the access-log line.
Middleware that answers before routing (the body limit, the transformer's rate limit)
sends with ``send_error``. The access log is pure ASGI middleware, the outermost of
ours, so it sees every answer and adds ``x-total-time`` (contract/timings.py); every
request leaves with an ``x-request-id``: the client's, else one made here and put on
the request too, so the model code, the predictor it calls and the log line all share it.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contract import timings
from contract.errors import ERRORS, ErrorType, ServiceError, error_body
from runtime.accesslog import INFERENCE_ROUTE, VersionOf, new_request_id, record, valid_request_id
from runtime.kserve.errors import KSERVE_ERRORS, describe_validation_error, kserve_error_type
from runtime.metrics import ERRORS_TOTAL

logger = logging.getLogger(__name__)

REQUEST_ID = b"x-request-id"
TOTAL_TIME = timings.TOTAL_TIME.encode()
# A scope key: when the request arrived, if a layer below ASGI saw it first (transformer/fasthttp.py hands
# on what it does not answer): the access log's latency and x-total-time count from there.
STARTED = "text_classifier.started"


def _served(scope, model_name: str) -> str:
    """``model_name`` if the app serves it (``app.state.is_served``, set by runtime/kserve/), else ""."""
    is_served = getattr(getattr(scope.get("app"), "state", None), "is_served", None)
    return model_name if model_name and is_served is not None and is_served(model_name) else ""


def error_response(scope, error_type: str, message: str, model_name: str = "", status: int | None = None,
                   headers: dict | None = None) -> JSONResponse:
    """The answer to an error: counted by served model, its type noted for the access-log line."""
    scope.setdefault("state", {})["error_type"] = error_type
    ERRORS_TOTAL.labels(_served(scope, model_name), error_type).inc()
    return JSONResponse(status_code=status or ERRORS[error_type].http_status, content=error_body(error_type, message),
                        headers=headers)


async def send_error(scope, receive, send, error: ServiceError, headers: dict | None = None) -> None:
    """Answer ``error`` from ASGI middleware, before routing: the model is the one the inference route names."""
    route = INFERENCE_ROUTE.match(scope["path"])
    response = error_response(scope, error.error_type, error.message, route["model"] if route else "", headers=headers)
    await response(scope, receive, send)


def answer(request: Request, error_type: str, message: str) -> JSONResponse:
    """A handler's error answer (the route is known: its ``model_name`` path parameter names the model)."""
    return error_response(request.scope, error_type, message, request.path_params.get("model_name", ""))


class AccessLog:
    def __init__(self, app, model_version: VersionOf):
        self.app = app
        self.model_version = model_version

    async def __call__(self, scope, receive, send):
        route = INFERENCE_ROUTE.match(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            return await self.app(scope, receive, send)
        started = scope.get(STARTED) or time.perf_counter()
        request_id = valid_request_id(dict(scope["headers"]).get(REQUEST_ID, b"").decode("latin-1"))
        if not request_id:  # none, or one that must not be echoed, forwarded or logged: ours replaces it
            request_id = new_request_id()
            scope = {**scope, "headers": [*(h for h in scope["headers"] if h[0] != REQUEST_ID),
                                          (REQUEST_ID, request_id.encode())]}
        answered = {"status": 500, "cache": None}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                answered["status"] = message["status"]
                answered["cache"] = headers.get(b"x-cache", b"").decode("latin-1") or None
                added = [(TOTAL_TIME, timings.ms(time.perf_counter() - started).encode())]
                added.append((REQUEST_ID, request_id.encode()))  # the one the model code saw, and ours only
                message = {**message, "headers": [*(h for h in message.get("headers", []) if h[0] != REQUEST_ID),
                                                  *added]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record(route["model"], self.model_version, scope["method"], scope["path"], answered["status"],
                   time.perf_counter() - started, request_id, answered["cache"],
                   scope.get("state", {}).get("error_type"))  # noted by error_response


class BodySizeLimit:
    """ASGI middleware: bodies over ``max_bytes`` get 413 before they are buffered whole."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> ServiceError:
        return ServiceError(
            ErrorType.PAYLOAD_TOO_LARGE, f"The body is {size} bytes; the limit is {self.max_bytes} bytes per request."
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await send_error(scope, receive, send, self._too_large(declared.decode()))
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # chunked bodies declare no length
                raise self._too_large(f"more than {received}")
            return message

        await self.app(scope, counting_receive, send)


# -- the error table's handlers, registered after KServe's so that these win ------------

async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    return answer(request, exc.error_type, exc.message)


async def _kserve_error(request: Request, exc: Exception) -> JSONResponse:
    return answer(request, kserve_error_type(exc), str(exc))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return answer(request, *describe_validation_error(exc))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == HTTPStatus.NOT_FOUND:
        return answer(request, ErrorType.ROUTE_NOT_FOUND, f"No route {request.method} {request.url.path}.")
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        return answer(request, ErrorType.METHOD_NOT_ALLOWED, f"{request.method} is not allowed on {request.url.path}.")
    if exc.status_code == HTTPStatus.BAD_REQUEST:  # FastAPI's only 400: a body it could not decode (e.g. not UTF-8)
        return answer(request, ErrorType.INVALID_JSON, f"The body could not be parsed as UTF-8 JSON ({exc.detail}).")
    error_type = ErrorType.INVALID_REQUEST if exc.status_code < 500 else ErrorType.INTERNAL
    return error_response(request.scope, error_type, str(exc.detail), request.path_params.get("model_name", ""),
                          status=exc.status_code)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return answer(request, ErrorType.INTERNAL,
                  f"Internal error ({type(exc).__name__}); the server log has the details.")


def install_rest_handlers(app: FastAPI) -> None:
    """Register the table on ``app``; called after KServe's handlers so these win."""
    app.add_exception_handler(ServiceError, _service_error)
    for kserve_exc in KSERVE_ERRORS:
        app.add_exception_handler(kserve_exc, _kserve_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


# -- our routes -------------------------------------------------------------------------

async def method_not_allowed(request: Request) -> JSONResponse:
    """A route handler for paths that exist for other methods only, where a looser path would match."""
    message = f"{request.method} is not allowed on {request.url.path}; use POST."
    response = answer(request, ErrorType.METHOD_NOT_ALLOWED, message)
    response.headers["allow"] = "POST"
    return response


async def repository_disabled(request: Request) -> JSONResponse:
    return answer(request, ErrorType.ROUTE_NOT_FOUND,
                  f"No route {request.method} {request.url.path}: this server serves "
                  "the model it started with; loading and unloading are not offered.")


def with_model_parameters(metadata: dict, model) -> dict:
    """V2 model metadata plus the model's own ``parameters`` (label order, revision; runtime/face.py).

    The V2 metadata schema has no field for label names, and KServe's response model
    drops unknown keys, hence our own metadata route.
    """
    metadata["parameters"] = model.metadata_parameters()
    if model.model_version:
        metadata["versions"] = [model.model_version]
    return metadata
