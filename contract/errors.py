"""The one error table: every failure a client can see, with its HTTP and gRPC status.

Code raises ``ServiceError(ErrorType.<TYPE>, "<message a person understands>")``.
``runtime/rest.py`` renders it, and every exception KServe, FastAPI or Starlette raise
on their own (classified by ``runtime.kserve.errors.error_type_of``), as ``{"error": message,
"error_type": code}`` with the table's HTTP status. On gRPC, the interceptor of
runtime/kserve/errors.py (``ServiceErrorToStatus``) aborts with the table's status code and the
same JSON object as the status details. This module is data only: the table names each gRPC
status by its ``grpc.StatusCode`` name, and only runtime/kserve/ turns it into a gRPC object.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorType(StrEnum):
    """Every error type a client can see (the ``error_type`` of each error body), as TEI names its ErrorType.

    A ``StrEnum``: each member equals its string, which is what goes on the wire.
    """

    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    INVALID_TENSOR = "invalid_tensor"
    INVALID_TEXT = "invalid_text"
    TOO_MANY_TEXTS = "too_many_texts"
    TEXT_TOO_LONG = "text_too_long"
    INVALID_PARAMETER = "invalid_parameter"
    TOO_MANY_WINDOWS = "too_many_windows"
    MODEL_NOT_FOUND = "model_not_found"
    ROUTE_NOT_FOUND = "route_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    REQUEST_TOO_LARGE = "request_too_large"
    HEADERS_TOO_LARGE = "headers_too_large"
    OVERLOADED = "overloaded"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"
    NOT_IMPLEMENTED = "not_implemented"
    BAD_GATEWAY = "bad_gateway"
    PREDICTOR_UNAVAILABLE = "predictor_unavailable"
    MODEL_NOT_READY = "model_not_ready"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class ErrorKind:
    http_status: int
    grpc_status: str  # the name of a grpc.StatusCode (runtime/kserve/errors.py maps it; a unit test checks each)
    meaning: str  # one line, printed in the README's error table


ERRORS: dict[ErrorType, ErrorKind] = {
    ErrorType.INVALID_JSON: ErrorKind(400, "INVALID_ARGUMENT", "the body is not valid JSON"),
    ErrorType.INVALID_REQUEST: ErrorKind(
        400, "INVALID_ARGUMENT", "a field is missing or null, or an item is not a string"
    ),
    ErrorType.INVALID_TENSOR: ErrorKind(
        400, "INVALID_ARGUMENT", "a V2 input has the wrong count, datatype or shape"
    ),
    ErrorType.INVALID_TEXT: ErrorKind(400, "INVALID_ARGUMENT", "a text is not valid UTF-8"),
    ErrorType.TOO_MANY_TEXTS: ErrorKind(400, "INVALID_ARGUMENT", "more texts than `--max_texts` in one request"),
    ErrorType.TEXT_TOO_LONG: ErrorKind(400, "INVALID_ARGUMENT", "a text longer than `--max_chars` characters"),
    ErrorType.INVALID_PARAMETER: ErrorKind(
        400, "INVALID_ARGUMENT", "a request parameter (`truncation`, `explain`, `granularity`) has a wrong value"
    ),
    ErrorType.TOO_MANY_WINDOWS: ErrorKind(
        400, "INVALID_ARGUMENT", "with `truncation: chunks`, a text needs more than `--max_windows` windows"
    ),
    ErrorType.MODEL_NOT_FOUND: ErrorKind(404, "NOT_FOUND", "no model of that name is served here"),
    ErrorType.ROUTE_NOT_FOUND: ErrorKind(404, "UNIMPLEMENTED", "no such path"),
    ErrorType.METHOD_NOT_ALLOWED: ErrorKind(405, "UNIMPLEMENTED", "the path exists, the method does not"),
    ErrorType.PAYLOAD_TOO_LARGE: ErrorKind(
        413, "RESOURCE_EXHAUSTED", "the body is larger than `--max_body_bytes`"
    ),
    ErrorType.REQUEST_TOO_LARGE: ErrorKind(
        413, "RESOURCE_EXHAUSTED",
        "the texts need more model rows (windows, explanation variants) than `--max_request_rows` "
        "(`--max_explain_rows` for explanations)",
    ),
    ErrorType.HEADERS_TOO_LARGE: ErrorKind(
        431, "RESOURCE_EXHAUSTED", "a REST request's line and headers exceed 64 KiB (the connection is closed)"
    ),
    ErrorType.OVERLOADED: ErrorKind(
        429, "RESOURCE_EXHAUSTED", "the inference queue is full; retry with backoff"
    ),
    ErrorType.RATE_LIMITED: ErrorKind(
        429, "RESOURCE_EXHAUSTED",
        "this client sent more than `--rate_limit_rps`; retry after the `Retry-After` seconds",
    ),
    ErrorType.INTERNAL: ErrorKind(500, "INTERNAL", "a bug: the server log has the traceback"),
    ErrorType.NOT_IMPLEMENTED: ErrorKind(
        501, "UNIMPLEMENTED", "e.g. explicit model versions, or `:explain` turned off (`--explain false`)"
    ),
    ErrorType.BAD_GATEWAY: ErrorKind(502, "INTERNAL", "the predictor answered something the transformer cannot use"),
    ErrorType.PREDICTOR_UNAVAILABLE: ErrorKind(
        503, "UNAVAILABLE", "the transformer cannot reach the predictor; retry shortly"
    ),
    ErrorType.MODEL_NOT_READY: ErrorKind(503, "UNAVAILABLE", "the model is loading or shutting down"),
    ErrorType.TIMEOUT: ErrorKind(
        504, "DEADLINE_EXCEEDED", "inference did not finish within the request deadline"
    ),
}


class ServiceError(Exception):
    """An error a client is meant to see: its type, its message, and the table's HTTP status.

    ``error_type`` is an ``ErrorType``; a string is still taken (the predictor's own error, passed
    through by the transformer), and one that is not in the table is a ValueError here.
    """

    def __init__(self, error_type: ErrorType | str, message: str):
        super().__init__(error_type, message)
        error_type = ErrorType(error_type)  # a ValueError here is a programming error (tests/unit/contract/test_errors.py)
        self.error_type = error_type
        self.message = message
        self.http_status = ERRORS[error_type].http_status

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


def error_body(error_type: str, message: str) -> dict[str, str]:
    return {"error": message, "error_type": error_type}
