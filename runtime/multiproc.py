"""Prometheus multiprocess mode, switched on before ``prometheus_client`` is imported.

With ``--workers N`` KServe 0.21 spawns N uvicorn worker processes and serves gRPC
from the parent, so every process holds its own counters and a scrape of
``/metrics`` would see one random worker's share (kserve issue 2979).
``prometheus_client`` shares values between processes through files in
``PROMETHEUS_MULTIPROC_DIR``, but it decides at *import* time, so this module must run
first: the ``__main__`` modules call ``enable()`` before importing kserve. It imports
nothing but the standard library for that reason.

The spawned workers inherit the environment, so they write to the same directory;
``/metrics`` (runtime/metrics.py) then aggregates every process's files.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

ENV = "PROMETHEUS_MULTIPROC_DIR"


def enable() -> str:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory (kept when already set); return it.

    A directory given from outside must be empty at start, as prometheus_client
    requires (an emptyDir per pod is); the default is a new directory under the temp
    dir, so a restarted process never adds a previous run's counts.
    """
    if "prometheus_client" in sys.modules and not os.environ.get(ENV):
        raise RuntimeError("runtime.multiproc.enable() must run before prometheus_client (or kserve) is imported")
    directory = os.environ.get(ENV)
    if not directory:
        directory = tempfile.mkdtemp(prefix="prometheus-multiproc-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)  # ours: gone with the server
    os.makedirs(directory, exist_ok=True)
    os.environ[ENV] = directory
    return directory


def enabled() -> bool:
    return bool(os.environ.get(ENV))
