"""The one error table: every failure a client can see, with its HTTP and gRPC status.

Code raises ``ServiceError("<error_type>", "<message a person understands>")``.
``install_rest_handlers`` renders it, and every exception KServe, FastAPI or
Starlette raise on their own, as ``{"error": message, "error_type": code}`` with the
table's HTTP status. On gRPC, ``ServiceError`` is a ``GrpcException``, so the
interceptor KServe already installs aborts with the table's status code and the same
JSON object as the status details.

Every REST error answer is counted in ``text_classifier_errors_total{model_name, error_type}``
(``model_name`` only for a model this server serves, so a client cannot mint label values).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from grpc import StatusCode
from grpc_interceptor.exceptions import GrpcException
from kserve import errors as kserve_errors
from starlette.exceptions import HTTPException as StarletteHTTPException

from contract.metrics import ERRORS as ERRORS_TOTAL

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorKind:
    http_status: int
    grpc_status: StatusCode
    meaning: str  # one line, printed in the README's error table


ERRORS: dict[str, ErrorKind] = {
    "invalid_json": ErrorKind(400, StatusCode.INVALID_ARGUMENT, "the body is not valid JSON"),
    "invalid_request": ErrorKind(
        400, StatusCode.INVALID_ARGUMENT, "a field is missing or null, or an item is not a string"
    ),
    "invalid_tensor": ErrorKind(
        400, StatusCode.INVALID_ARGUMENT, "a V2 input has the wrong count, datatype or shape"
    ),
    "invalid_text": ErrorKind(400, StatusCode.INVALID_ARGUMENT, "a text is not valid UTF-8"),
    "too_many_texts": ErrorKind(400, StatusCode.INVALID_ARGUMENT, "more texts than `--max_texts` in one request"),
    "text_too_long": ErrorKind(400, StatusCode.INVALID_ARGUMENT, "a text longer than `--max_chars` characters"),
    "invalid_parameter": ErrorKind(
        400, StatusCode.INVALID_ARGUMENT, "a request parameter (`truncation`, `explain`, `granularity`) has a wrong value"
    ),
    "too_many_windows": ErrorKind(
        400, StatusCode.INVALID_ARGUMENT, "with `truncation: chunks`, a text needs more than `--max_windows` windows"
    ),
    "model_not_found": ErrorKind(404, StatusCode.NOT_FOUND, "no model of that name is served here"),
    "route_not_found": ErrorKind(404, StatusCode.UNIMPLEMENTED, "no such path"),
    "method_not_allowed": ErrorKind(405, StatusCode.UNIMPLEMENTED, "the path exists, the method does not"),
    "payload_too_large": ErrorKind(
        413, StatusCode.RESOURCE_EXHAUSTED, "the body is larger than `--max_body_bytes`"
    ),
    "request_too_large": ErrorKind(
        413, StatusCode.RESOURCE_EXHAUSTED,
        "the texts need more model rows (windows, explanation variants) than `--max_request_rows`",
    ),
    "overloaded": ErrorKind(
        429, StatusCode.RESOURCE_EXHAUSTED, "the inference queue is full; retry with backoff"
    ),
    "rate_limited": ErrorKind(
        429, StatusCode.RESOURCE_EXHAUSTED,
        "this client sent more than `--rate_limit_rps`; retry after the `Retry-After` seconds",
    ),
    "internal": ErrorKind(500, StatusCode.INTERNAL, "a bug: the server log has the traceback"),
    "not_implemented": ErrorKind(
        501, StatusCode.UNIMPLEMENTED, "e.g. explicit model versions, or `:explain` turned off (`--explain false`)"
    ),
    "bad_gateway": ErrorKind(502, StatusCode.INTERNAL, "the predictor answered something the transformer cannot use"),
    "predictor_unavailable": ErrorKind(
        503, StatusCode.UNAVAILABLE, "the transformer cannot reach the predictor; retry shortly"
    ),
    "model_not_ready": ErrorKind(503, StatusCode.UNAVAILABLE, "the model is loading or shutting down"),
    "timeout": ErrorKind(
        504, StatusCode.DEADLINE_EXCEEDED, "inference did not finish within the request deadline"
    ),
}


class ServiceError(GrpcException):
    """An error a client is meant to see; ``error_type`` must be a key of ``ERRORS``."""

    def __init__(self, error_type: str, message: str):
        kind = ERRORS[error_type]  # a KeyError here is a programming error, caught by tests
        self.error_type = error_type
        self.message = message
        self.http_status = kind.http_status
        super().__init__(details=json.dumps(error_body(error_type, message)), status_code=kind.grpc_status)

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


def error_body(error_type: str, message: str) -> dict[str, str]:
    return {"error": message, "error_type": error_type}


def error_response(error_type: str, message: str, model_name: str = "") -> JSONResponse:
    ERRORS_TOTAL.labels(model_name, error_type).inc()
    return JSONResponse(status_code=ERRORS[error_type].http_status, content=error_body(error_type, message))


def answer(request: Request, error_type: str, message: str) -> JSONResponse:
    """A handler's error answer: counted by served model, and the type noted for the access log line."""
    request.scope.setdefault("state", {})["error_type"] = error_type
    return error_response(error_type, message, served_model_name(request))


def served_model_name(request: Request) -> str:
    """The model a request names, if this server serves it (``app.state.is_served``, set by contract/server.py)."""
    name = request.path_params.get("model_name", "")
    is_served = getattr(request.app.state, "is_served", None)
    return name if name and is_served is not None and is_served(name) else ""


def _describe_validation_error(exc: RequestValidationError) -> tuple[str, str]:
    """FastAPI's pydantic errors, as one sentence and an error type."""
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return "invalid_json", f"The body is not valid JSON: {err.get('msg', '')}".rstrip(": ")
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
        # KServe's V2 body is Union[InferenceRequest, bytes]: name fields, not union branches.
        if loc[:1] == ["bytes"]:
            continue
        where = ".".join(part for part in loc if part != "InferenceRequest") or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid_request", "The request does not match the V2 inference schema: " + "; ".join(problems)


def _kserve_error_type(exc: Exception) -> str:
    if isinstance(exc, kserve_errors.ModelNotFound):
        return "model_not_found"
    if isinstance(exc, (kserve_errors.ModelNotReady, kserve_errors.ServerNotReady, kserve_errors.ServerNotLive)):
        return "model_not_ready"
    if isinstance(exc, (NotImplementedError, kserve_errors.UnsupportedProtocol)):
        return "not_implemented"
    if isinstance(exc, kserve_errors.InferenceError):
        # KServe raises it only from its tensor codecs, when data does not match the
        # declared datatype or shape (e.g. invalid UTF-8 in a BYTES tensor).
        return "invalid_tensor"
    # KServe's only InvalidInput message about the body itself is a JSON decode failure.
    if str(exc).startswith("Unrecognized request format"):
        return "invalid_json"
    return "invalid_request"


async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    return answer(request, exc.error_type, exc.message)


async def _kserve_error(request: Request, exc: Exception) -> JSONResponse:
    return answer(request, _kserve_error_type(exc), str(exc))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return answer(request, *_describe_validation_error(exc))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == HTTPStatus.NOT_FOUND:
        return answer(request, "route_not_found", f"No route {request.method} {request.url.path}.")
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        return answer(request, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}.")
    if exc.status_code == HTTPStatus.BAD_REQUEST:  # FastAPI's only 400: a body it could not decode (e.g. not UTF-8)
        return answer(request, "invalid_json", f"The body could not be parsed as UTF-8 JSON ({exc.detail}).")
    error_type = "invalid_request" if exc.status_code < 500 else "internal"
    ERRORS_TOTAL.labels(served_model_name(request), error_type).inc()
    return JSONResponse(status_code=exc.status_code, content=error_body(error_type, str(exc.detail)))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return answer(request, "internal", f"Internal error ({type(exc).__name__}); the server log has the details.")


async def method_not_allowed(request: Request) -> JSONResponse:
    """A route handler for paths that exist for other methods only, where a looser path would match."""
    response = answer(request, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}; use POST.")
    response.headers["allow"] = "POST"
    return response


KSERVE_ERRORS = (
    kserve_errors.InvalidInput,
    kserve_errors.InferenceError,
    kserve_errors.ModelNotFound,
    kserve_errors.ModelNotReady,
    kserve_errors.ServerNotReady,
    kserve_errors.ServerNotLive,
    kserve_errors.UnsupportedProtocol,
    NotImplementedError,
)


def error_type_of(exc: Exception) -> str:
    """The table's error type of any exception a request raised (``internal`` for a bug)."""
    if isinstance(exc, ServiceError):
        return exc.error_type
    return _kserve_error_type(exc) if isinstance(exc, KSERVE_ERRORS) else "internal"


def install_rest_handlers(app: FastAPI) -> None:
    """Register the table on ``app``; called after KServe's handlers so these win."""
    app.add_exception_handler(ServiceError, _service_error)
    for kserve_exc in KSERVE_ERRORS:
        app.add_exception_handler(kserve_exc, _kserve_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
