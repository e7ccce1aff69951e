"""What the rest of the code needs from KServe besides the server and the client, under names of ours.

``Model``: the base class of the model face (runtime/face.py), whose hooks pins.SIGNATURES pins.

KServe's log line format (runtime/logs.py keeps its text format KServe's) and its model-server
flag parser (runtime/settings.py adds our flags to it). Kept here so that a KServe upgrade
touches this package only.
"""

from __future__ import annotations

import argparse

from kserve import Model
from kserve.logging import KSERVE_LOGGER_DATE_FORMAT as LOG_DATE_FORMAT
from kserve.logging import KSERVE_LOGGER_FORMAT as LOG_FORMAT

__all__ = ["LOG_DATE_FORMAT", "LOG_FORMAT", "Model", "server_flags"]  # Model: the base of runtime/face.py


def server_flags() -> argparse.ArgumentParser:
    """KServe's own model-server flags (--http_port, --workers, ...), as a parent parser for ours."""
    from kserve import model_server

    return model_server.parser
