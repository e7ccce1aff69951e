"""The one error table: every failure a client can see, with its HTTP and gRPC status.

Code raises ``ServiceError("<error_type>", "<message a person understands>")``.
``runtime/rest.py`` renders it, and every exception KServe, FastAPI or Starlette raise
on their own (classified here by ``error_type_of``), as ``{"error": message,
"error_type": code}`` with the table's HTTP status. On gRPC, ``ServiceError`` is a
``GrpcException``, so the interceptor KServe already installs aborts with the table's
status code and the same JSON object as the status details.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError
from grpc import StatusCode
from grpc_interceptor.exceptions import GrpcException
from kserve import errors as kserve_errors


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


def describe_validation_error(exc: RequestValidationError) -> tuple[str, str]:
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


def kserve_error_type(exc: Exception) -> str:
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
        # orjson refuses JSON's "\ud800" (a lone surrogate): valid JSON, but not a text (as V2 answers it).
        return "invalid_text" if LONE_SURROGATE.search(str(exc)) else "invalid_json"
    return "invalid_request"


# orjson's words for a "\\ud800"-style escape without its pair (not for bytes that are not UTF-8).
LONE_SURROGATE = re.compile(r"(no low|invalid high|invalid low) surrogate in string")

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
    return kserve_error_type(exc) if isinstance(exc, KSERVE_ERRORS) else "internal"
