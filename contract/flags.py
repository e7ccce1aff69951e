"""Helpers for the ``__main__`` modules: every flag of ours can also be set by an env var."""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

from kserve.logging import KSERVE_LOGGER_DATE_FORMAT, KSERVE_LOGGER_FORMAT

from contract.schema import Limits


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
    return parser


def strtobool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def configure_logging() -> None:
    """Our modules' loggers, in KServe's format, on stderr."""
    level = os.environ.get("KSERVE_LOGLEVEL", "INFO").upper()
    logging.basicConfig(level=level, format=KSERVE_LOGGER_FORMAT, datefmt=KSERVE_LOGGER_DATE_FORMAT)
    # KServe 0.21 answers with ORJSONResponse, which FastAPI 0.165 flags on every route: noise, not news.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")


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
