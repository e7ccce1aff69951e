"""The error table's type of every exception KServe, FastAPI or Starlette raise on their own, and
our ``ServiceError`` as a gRPC status.

Moved out of contract/errors.py, which is data only: this is where KServe's exception classes and
gRPC's status codes are known.
"""

from __future__ import annotations

import json
import re

from fastapi.exceptions import RequestValidationError
from grpc import StatusCode
from grpc_interceptor.exceptions import GrpcException
from kserve import errors as kserve_errors
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor

from contract.errors import ERRORS, ErrorType, ServiceError, error_body


def grpc_status(error_type: ErrorType) -> StatusCode:
    """The table's gRPC status of an error type (the table names it: contract/errors.py is data only)."""
    return StatusCode[ERRORS[error_type].grpc_status]


def as_grpc(error: ServiceError) -> GrpcException:
    """``error`` as gRPC sends it: the table's status code, and the REST error body as JSON in the details."""
    return GrpcException(details=json.dumps(error_body(error.error_type, error.message)),
                         status_code=grpc_status(error.error_type))


class ServiceErrorToStatus(ExceptionToStatusInterceptor):
    """KServe's interceptor (kserve/protocol/grpc/interceptors.py, ``ExceptionToStatusInterceptor.handle_exception``),
    which aborts with a ``GrpcException``'s code and details, given our ``ServiceError`` as one."""

    async def handle_exception(self, ex, request_or_iterator, context, method_name):
        if isinstance(ex, ServiceError):
            ex = as_grpc(ex)
        await super().handle_exception(ex, request_or_iterator, context, method_name)


def describe_validation_error(exc: RequestValidationError) -> tuple[ErrorType, str]:
    """FastAPI's pydantic errors, as one sentence and an error type."""
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return ErrorType.INVALID_JSON, f"The body is not valid JSON: {err.get('msg', '')}".rstrip(": ")
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
        # KServe's V2 body is Union[InferenceRequest, bytes]: name fields, not union branches.
        if loc[:1] == ["bytes"]:
            continue
        where = ".".join(part for part in loc if part != "InferenceRequest") or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return ErrorType.INVALID_REQUEST, "The request does not match the V2 inference schema: " + "; ".join(problems)


def kserve_error_type(exc: Exception) -> ErrorType:
    if isinstance(exc, kserve_errors.ModelNotFound):
        return ErrorType.MODEL_NOT_FOUND
    if isinstance(exc, (kserve_errors.ModelNotReady, kserve_errors.ServerNotReady, kserve_errors.ServerNotLive)):
        return ErrorType.MODEL_NOT_READY
    if isinstance(exc, (NotImplementedError, kserve_errors.UnsupportedProtocol)):
        return ErrorType.NOT_IMPLEMENTED
    if isinstance(exc, kserve_errors.InferenceError):
        # KServe raises it only from its tensor codecs, when data does not match the
        # declared datatype or shape (e.g. invalid UTF-8 in a BYTES tensor).
        return ErrorType.INVALID_TENSOR
    # KServe's only InvalidInput message about the body itself is a JSON decode failure.
    if str(exc).startswith("Unrecognized request format"):
        # orjson refuses JSON's "\ud800" (a lone surrogate): valid JSON, but not a text (as V2 answers it).
        return ErrorType.INVALID_TEXT if LONE_SURROGATE.search(str(exc)) else ErrorType.INVALID_JSON
    return ErrorType.INVALID_REQUEST


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


def error_type_of(exc: Exception) -> ErrorType:
    """The table's error type of any exception a request raised (``internal`` for a bug)."""
    if isinstance(exc, ServiceError):
        return exc.error_type
    return kserve_error_type(exc) if isinstance(exc, KSERVE_ERRORS) else ErrorType.INTERNAL
