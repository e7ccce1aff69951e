"""Log configuration shared by both services: KServe's text format, or one JSON object per line.

One ``logging.config`` dict configures the server process and, passed to KServe as
its log config, every ``--workers`` process it spawns (a spawned process starts with
no logging configured at all). KServe's and uvicorn's loggers propagate to the one
root handler, so with ``--log_format json`` every line is JSON, theirs included.
uvicorn's own access log is off: ``runtime/accesslog.py`` writes one richer line per
inference request instead.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import sys
import time
import traceback
import warnings

from runtime.kserve.codec import LOG_DATE_FORMAT, LOG_FORMAT

LOG_FORMATS = ("text", "json")
# The dict configure_logging applied; runtime/kserve/server.py hands it to KServe's worker processes.
applied_logging_config: dict | None = None
# Attributes a log call may pass in ``extra``; the JSON formatter copies these and no
# others, so nothing a client sent (a text) can end up in a log line by accident.
FIELDS = ("request_id", "model", "model_version", "method", "path", "status", "latency_ms", "cache", "error_type")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        entry.update({key: getattr(record, key) for key in FIELDS if getattr(record, key, None) is not None})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# Escaped in every text line: a client's model name or path, logged by KServe itself
# ("Model with name ... does not exist"), could otherwise start a forged line (issue 26).
TRACEBACK_LINES = ("Traceback", "  File", "\nThe above exception", "\nDuring handling")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(message: str) -> str:
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", message)


class TextFormatter(logging.Formatter):
    """KServe's text format, one line per message: control characters in the message escaped
    (a traceback, appended after it, keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:
        """The traceback's frames as they are; each exception's own message (KServe's ModelNotFound
        names the model a client asked for) on one escaped line."""
        parts = traceback.format_exception(*ei)
        return "".join(part if part.startswith(TRACEBACK_LINES) else escape_controls(part.rstrip("\n")) + "\n"
                       for part in parts).rstrip("\n")


def stderr_handler() -> logging.Handler:
    """The one log handler. dictConfig builds it in every process, the spawned workers too,
    so it also applies the process-wide settings a logging config cannot express."""
    # KServe 0.21 answers with ORJSONResponse, which FastAPI 0.165 flags on every route: noise, not news.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    logging.captureWarnings(True)  # any other warning becomes a log line in the chosen format
    return logging.StreamHandler(sys.stderr)


def logging_config(log_format: str = "text", level: str = "INFO", access_log: bool = True) -> dict:
    """A ``logging.config.dictConfig`` dict: picklable, so KServe hands it to its worker processes."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, not {log_format!r}")
    formatter = (
        {"()": f"{__name__}.JsonFormatter"}
        if log_format == "json"
        else {"()": f"{__name__}.TextFormatter", "fmt": LOG_FORMAT, "datefmt": LOG_DATE_FORMAT}
    )
    propagate = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"stderr": {"()": f"{__name__}.stderr_handler", "formatter": "main"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "kserve": {**propagate, "level": level},
            "kserve.trace": {**propagate, "level": level},
            "uvicorn": {**propagate, "level": "INFO"},
            "uvicorn.error": {**propagate, "level": "INFO"},
            "uvicorn.access": {**propagate, "level": "WARNING"},
            # Off, the per-request line is skipped before it is formatted; the metrics still count.
            "contract.access": {**propagate, "level": level if access_log else "WARNING"},
        },
    }


def configure_logging(log_format: str, access_log: bool) -> None:
    """Every logger (ours, KServe's, uvicorn's) on stderr, as text in KServe's format or as JSON.

    ``log_format`` and ``access_log`` are the ``--log_format`` and ``--access_log`` settings.
    """
    global applied_logging_config
    level = os.environ.get("KSERVE_LOGLEVEL", "INFO").upper()
    applied_logging_config = logging_config(log_format, level, access_log)
    logging.config.dictConfig(applied_logging_config)
