"""One access-log line and the request metrics for every inference request, REST and gRPC.

The REST middleware (runtime/rest.py) and the gRPC interceptor (runtime/grpc.py) both
end in ``record``. Only inference calls are logged and counted (``:predict``,
``:explain``, ``/infer``, gRPC ``ModelInfer``): health checks and scrapes would drown
them. The line holds ids, status, latency and the cache outcome, never a text. A
model name this server does not serve is logged, but counted as ``model_name=""`` so
that clients cannot mint label values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from random import getrandbits

from runtime.metrics import REQUEST_SECONDS, REQUESTS, child, counted, observed, write

logger = logging.getLogger("contract.access")  # the logger name is configuration (runtime/logs.py): kept

INFERENCE_ROUTE = re.compile(r"^/v[12]/models/(?P<model>[^/:]+)(?::(?:predict|explain)|(?:/versions/[^/]+)?/infer)$")

VersionOf = Callable[[str], str | None]  # the version a served model reports; LookupError if not served


def served_as(model: str, version_of: VersionOf) -> tuple[str, str | None]:
    """(metric label, version): ``model`` and its version if this server serves it, else ("", None)
    (a label value per unknown name would grow without bound)."""
    try:
        return model, version_of(model)
    except LookupError:
        return "", None


def metric_label(model: str, version_of: VersionOf) -> str:
    return served_as(model, version_of)[0]


# What a request id may be: what uuids, W3C trace ids and common id schemes use, and no more.
# A client's id outside it (or longer) is replaced with one made here: it is echoed, forwarded
# to the predictor and logged, so it must not carry a newline or a megabyte (issue 26).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Escaped in the text log line: a percent-decoded path or a gRPC model name can hold a newline
# (a forged log line), ANSI escapes or Unicode line separators.
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
LOGGED_CHARS = 256


# The version (4) and variant (10) bits of a random UUID (RFC 9562), set on 128 random bits.
_UUID4_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID4_BITS = (0x4 << 76) | (0x2 << 62)


def new_request_id() -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())`` writes it, for a request that brought no usable id.

    From Python's Mersenne Twister rather than ``os.urandom``: an id must be unique, not secret,
    and uuid4's system call and UUID object were a measurable part of a cache hit's CPU
    (BENCHMARKS.md, issue 27). ``random`` reseeds itself in a forked worker, so workers differ.
    """
    h = "%032x" % (getrandbits(128) & _UUID4_MASK | _UUID4_BITS)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def valid_request_id(value: str | None) -> str | None:
    """``value`` if it is an acceptable request id, else None (the caller makes one)."""
    return value if value and REQUEST_ID.fullmatch(value) else None


def printable(value: str) -> str:
    """``value`` for one log line: control characters escaped, and at most ``LOGGED_CHARS`` of it."""
    if len(value) <= LOGGED_CHARS and value.isprintable():  # every UNSAFE character is non-printable
        return value
    cut = value[:LOGGED_CHARS] + ("..." if len(value) > LOGGED_CHARS else "")
    return UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", cut)


def record(model: str, version_of: VersionOf, method: str, path: str, status: int, seconds: float,
           request_id: str, cache: str | None, error_type: str | None = None) -> None:
    """Count and time one request, and write its access-log line."""
    label, version = served_as(model, version_of)  # one lookup for both
    model, path, request_id = printable(model), printable(path), printable(request_id)
    write([counted(child(REQUESTS, label, str(status))), *observed(child(REQUEST_SECONDS, label), seconds)])
    if not logger.isEnabledFor(logging.INFO):  # --access_log false: what info() checks first, before the arguments
        return
    logger.info(
        "%s %s %d %.1f ms model=%s model_version=%s cache=%s request_id=%s",
        method, path, status, seconds * 1000, model, version, cache or "-", request_id,
        extra={"request_id": request_id, "model": model, "model_version": version, "method": method, "path": path,
               "status": status, "latency_ms": round(seconds * 1000, 2), "cache": cache, "error_type": error_type},
    )
