"""Graceful shutdown: on SIGTERM readiness goes false first, the server keeps serving while load balancers
notice, then it stops accepting and every in-flight request completes.

What Kubernetes does on scale-down or a rollout: SIGTERM, and *at the same time* the
pod's endpoints are removed — which kube-proxy, Istio and Knative's activator learn
a moment later. A server that closed its port at once would refuse the requests
still routed to it. So, on the first SIGTERM:

1. ``/v2/health/ready``, ``/v2/models/{name}/ready`` and gRPC ``ServerReady`` /
   ``ModelReady`` answer "not ready" (inference and liveness are unaffected);
2. for ``--shutdown_drain_s`` seconds everything else is served as before;
3. then uvicorn stops accepting connections, answers every request it has (up to
   KServe's 30 s grace period; every request has a shorter deadline), and gRPC stops
   with the same grace.

A second SIGTERM, or SIGINT (Ctrl-C), skips the wait. In Knative mode the queue-proxy
in front of the container drains as well, so the chart's drain is short (5 s); with
KServe's RawDeployment mode or a plain Deployment, this drain is what keeps scale-down
free of errors.

With ``--workers`` > 1 the REST workers are processes of their own: the parent marks the
drain in a file they check (``MARKER_ENV``), so their readiness flips with it, and once
the parent has waited they stop at once instead of draining a second time.

This module holds the state; the servers that act on it (uvicorn's, KServe's) are
subclassed in runtime/kserve/.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

MARKER_ENV = "TEXT_CLASSIFIER_DRAIN_MARKER"
_draining = False


def begin(seconds: float = 0.0) -> None:
    """Mark this process, and the worker processes sharing its marker, as shutting down."""
    global _draining
    if not _draining:
        logger.info("Shutting down: readiness is now false; serving for %g s more, then draining", seconds)
    _draining = True
    marker = os.environ.get(MARKER_ENV)
    if marker:
        Path(marker).touch()


def draining() -> bool:
    if _draining:
        return True
    marker = os.environ.get(MARKER_ENV)
    return bool(marker) and os.path.exists(marker)


def share_with_workers() -> Path:
    """Give worker processes started from now on a marker file to learn of the drain from (this process's)."""
    marker = Path(tempfile.gettempdir()) / f"text-classifier-drain-{os.getpid()}"
    marker.unlink(missing_ok=True)  # a leftover of an earlier process with the same pid
    os.environ[MARKER_ENV] = str(marker)
    return marker
