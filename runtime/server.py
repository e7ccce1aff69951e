"""``serve``: one loaded model behind KServe's REST and gRPC servers, with everything of runtime/ installed.

The error table, the access log and metrics, the body limit, graceful shutdown
(runtime/shutdown.py) and a place for a service's own middleware and gRPC
interceptors (the transformer's rate limit). The KServe classes this takes are
subclassed in runtime/kserve/, the one package that knows KServe's insides.
"""

from __future__ import annotations

import argparse
import logging

from runtime import kserve as kserve_fence
from runtime import multiproc
from runtime.face import TextClassificationModel
from runtime.grpc import server_options as grpc_server_options
from runtime.kserve.server import ModelServer
from runtime.metrics import INFO
from runtime.settings import ServiceSettings

logger = logging.getLogger(__name__)


def serve(model: TextClassificationModel, settings: ServiceSettings, kserve_flags: argparse.Namespace,
          **server_options) -> None:
    """Serve ``model`` until SIGTERM: ``settings`` are ours, ``kserve_flags`` KServe's server flags, both
    as parsed by a ``__main__`` module (runtime/settings.py ``parse``)."""
    flags = kserve_flags
    if flags.workers > 1 and not multiproc.enabled():
        logger.warning("--workers %d without Prometheus multiprocess mode: each scrape of /metrics sees one "
                       "worker's counts (call runtime.multiproc.enable() first in __main__)", flags.workers)
    INFO.labels(model.name, model.model_version or "").set(1)
    kserve_fence.install()  # KServe's one module-level override, here and not at import
    ModelServer(
        http_port=flags.http_port,
        grpc_port=flags.grpc_port,
        workers=flags.workers,
        max_threads=flags.max_threads,
        enable_grpc=flags.enable_grpc,
        enable_docs_url=flags.enable_docs_url,
        enable_latency_logging=settings.enable_latency_logging,
        # From our parse, not KServe's import-time parse_known_args, which reads `--access_log false`
        # as an abbreviation of --access_log_format and then fails on the missing asgi_logger.
        access_log_format=flags.access_log_format,
        max_body_bytes=settings.max_body_bytes,
        grpc_max_send_message_length=flags.grpc_max_send_message_length,
        drain_s=settings.shutdown_drain_s,
        read_timeout_s=settings.read_timeout_s,
        grpc_options=grpc_server_options(settings),
        **server_options,
    ).start([model])
