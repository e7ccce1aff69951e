"""The error table's type of every exception KServe, FastAPI or Starlette raise on their own.

Moved out of contract/errors.py, which is data only: this is where KServe's exception classes are known.
"""

from __future__ import annotations

import re

from fastapi.exceptions import RequestValidationError
from kserve import errors as kserve_errors

from contract.errors import ServiceError


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
