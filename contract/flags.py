"""Helpers for the ``__main__`` modules: every flag of ours can also be set by an env var."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Callable

from kserve.logging import KSERVE_LOGGER_DATE_FORMAT, KSERVE_LOGGER_FORMAT


def env(name: str, default: Any, cast: Callable[[str], Any] = str) -> Any:
    """The value of env var ``name`` cast like the flag, or ``default`` when unset or empty."""
    raw = os.environ.get(name, "")
    return cast(raw) if raw != "" else default


def configure_logging() -> None:
    """Our modules' loggers, in KServe's format, on stderr."""
    level = os.environ.get("KSERVE_LOGLEVEL", "INFO").upper()
    logging.basicConfig(level=level, format=KSERVE_LOGGER_FORMAT, datefmt=KSERVE_LOGGER_DATE_FORMAT)
    # KServe 0.21 answers with ORJSONResponse, which FastAPI 0.165 flags on every route: noise, not news.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
