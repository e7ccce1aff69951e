"""What the rest of the code needs from KServe besides the server and the client, under names of ours.

``Model``: the base class of the model face (runtime/face.py), whose hooks pins.SIGNATURES pins.

KServe's per-stage latency histograms, its log line format (runtime/logs.py keeps its text format KServe's) and its model-server
flag parser (runtime/settings.py adds our flags to it). Kept here so that a KServe upgrade
touches this package only.
"""

from __future__ import annotations

import argparse

from kserve import Model
from kserve.logging import KSERVE_LOGGER_DATE_FORMAT as LOG_DATE_FORMAT
from kserve.logging import KSERVE_LOGGER_FORMAT as LOG_FORMAT
from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME

# Model: the base of runtime/face.py. The *_HIST_TIME histograms: KServe's per-stage latency series, which
# the transformer's cache-hit fast path (transformer/fastpath.py) fills as the full path would.
__all__ = ["LOG_DATE_FORMAT", "LOG_FORMAT", "Model", "POST_HIST_TIME", "PRE_HIST_TIME", "PREDICT_HIST_TIME",
           "server_flags"]


def server_flags() -> argparse.ArgumentParser:
    """KServe's own model-server flags (--http_port, --workers, ...), as a parent parser for ours."""
    from kserve import model_server

    return model_server.parser
