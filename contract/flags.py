"""Helpers for the ``__main__`` modules: every flag of ours can also be set by an env var."""

from __future__ import annotations

import argparse
import logging.config
import os
from collections.abc import Callable
from typing import Any

from contract.logs import LOG_FORMATS, logging_config
from contract.schema import Limits

# The dict configure_logging applied; contract/server.py hands it to KServe's worker processes.
applied_logging_config: dict | None = None


def env(name: str, default: Any, cast: Callable[[str], Any] = str) -> Any:
    """The value of env var ``name`` cast like the flag, or ``default`` when unset or empty."""
    raw = os.environ.get(name, "")
    return cast(raw) if raw != "" else default


def service_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """KServe's model-server flags plus ours, with the defaults both services share."""
    from kserve import model_server

    parser = argparse.ArgumentParser(prog=prog, parents=[model_server.parser], description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # KServe's per-request latency line costs a log write per request (a syscall, which
    # is dear on sandboxed nodes); the same latencies are histograms on /metrics.
    parser.set_defaults(model_name=env("MODEL_NAME", "model"),
                        enable_latency_logging=env("ENABLE_LATENCY_LOGGING", False, strtobool))
    parser.add_argument("--shutdown_drain_s", type=float, default=env("SHUTDOWN_DRAIN_S", 0.0, float),
                        help="On SIGTERM, answer not-ready but keep serving this many seconds before draining, so "
                             "load balancers stop sending first (contract/shutdown.py) [SHUTDOWN_DRAIN_S].")
    return parser


def configure_logging(log_format: str | None = None, access_log: bool | None = None) -> None:
    """Every logger (ours, KServe's, uvicorn's) on stderr, as text in KServe's format or as JSON.

    ``log_format`` and ``access_log`` are the ``--log_format`` and ``--access_log`` flags;
    without them the ``LOG_FORMAT`` and ``ACCESS_LOG`` env vars decide.
    """
    global applied_logging_config
    level = os.environ.get("KSERVE_LOGLEVEL", "INFO").upper()
    if access_log is None:
        access_log = env("ACCESS_LOG", True, strtobool)
    applied_logging_config = logging_config(log_format or env("LOG_FORMAT", "text"), level, access_log)
    logging.config.dictConfig(applied_logging_config)


def strtobool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def add_logging_flags(parser) -> None:
    parser.add_argument("--log_format", choices=LOG_FORMATS, default=env("LOG_FORMAT", "text"),
                        help="text (KServe's format) or json: one JSON object per line, with request_id, model, "
                             "model_version, status, latency_ms and cache outcome on access lines [LOG_FORMAT].")
    parser.add_argument("--access_log", type=strtobool, default=env("ACCESS_LOG", True, strtobool),
                        help="One log line per inference request (true/false); the request metrics are kept "
                             "either way [ACCESS_LOG].")


def add_limit_flags(parser) -> None:
    """The request limits, the same flags and defaults on both services."""
    defaults = Limits()
    parser.add_argument("--max_texts", type=int, default=env("MAX_TEXTS", defaults.max_texts, int),
                        help="Most texts in one request; more is a 400 too_many_texts [MAX_TEXTS].")
    parser.add_argument("--max_chars", type=int, default=env("MAX_CHARS", defaults.max_chars, int),
                        help="Most characters in one text; more is a 400 text_too_long [MAX_CHARS].")
    parser.add_argument("--max_body_bytes", type=int, default=env("MAX_BODY_BYTES", defaults.max_body_bytes, int),
                        help="Largest request body (REST) or message (gRPC); more is a 413 [MAX_BODY_BYTES].")


def limits_from(args) -> Limits:
    return Limits(max_texts=args.max_texts, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes)
