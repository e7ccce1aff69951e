"""KServe's ModelServer with our REST/gRPC server classes, data plane, drain and shutdown."""

from __future__ import annotations

import asyncio
import importlib.util
import signal

import kserve
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING

from runtime import logs, shutdown
from runtime.face import TextClassificationModel
from runtime.kserve.dataplane import DataPlane
from runtime.kserve.grpc_server import GRPCServer
from runtime.kserve.rest_server import RESTServer, RESTServerMultiProcess


def use_uvloop(event_loop: str) -> None:
    """uvloop for ``--event_loop auto`` (KServe's default) or ``uvloop``, as uvicorn's own ``run`` would pick.

    KServe runs uvicorn's ``serve()`` inside ``asyncio.run``, so uvicorn never installs
    uvloop and every request pays the pure-Python loop and transports (on a cache hit,
    a large share of the transformer's instructions: BENCHMARKS.md, "Cache-hit fast path").
    """
    if event_loop in ("auto", "uvloop") and importlib.util.find_spec("uvloop") is not None:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


class ModelServer(kserve.ModelServer):
    def __init__(self, *args, max_body_bytes: int, grpc_max_send_message_length: int, drain_s: float,
                 read_timeout_s: float = 30.0, grpc_options: list | tuple = (),
                 rest_middlewares: tuple = (), grpc_interceptors: tuple = (), rest_fast_path=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_body_bytes = max_body_bytes
        self.grpc_max_send_message_length = grpc_max_send_message_length
        self.drain_s = drain_s
        self.read_timeout_s = read_timeout_s
        self.rest_middlewares = tuple(rest_middlewares)
        self.rest_fast_path = rest_fast_path
        self.grpc_interceptors = tuple(grpc_interceptors)
        self.grpc_options = list(grpc_options)
        self.dataplane = DataPlane(model_registry=self.registered_models)

    def stop(self, sig: int) -> None:
        """KServe's stop, after the drain of runtime/shutdown.py when this process has not drained yet.

        With one worker uvicorn has drained before this runs (DrainingServer); with
        ``--workers`` this process serves gRPC only and the workers learn of the drain
        from the marker file."""
        if sig == signal.SIGTERM and self.drain_s > 0 and not shutdown.draining():
            shutdown.begin(self.drain_s)
            asyncio.get_running_loop().call_later(self.drain_s, self._stop_now, sig)
            return
        self._stop_now(sig)

    def _stop_now(self, sig: int) -> None:
        if getattr(self, "_stopped", False):  # e.g. a second SIGTERM: KServe's stop would unload twice and fail
            return
        self._stopped = True
        shutdown.begin()
        super().stop(sig)

    async def _serve(self) -> None:
        """Wait for every server, not just the first to finish or fail.

        KServe gathers the servers and stops at the first that returns or raises; the
        multi-worker REST server is then cancelled before it reaps its worker processes,
        which are left running, bound to the port. Here a failing server stops the others
        gracefully, and shutdown waits until every one of them is done.
        """
        tasks = [asyncio.ensure_future(server) for server in self.servers]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        if pending:
            if any(task.exception() for task in done):
                self._stop_now(signal.SIGTERM)  # no drain: a server already failed
            await asyncio.wait(pending)
        for task in tasks:
            if task.exception():
                raise task.exception()

    def start(self, models: list[TextClassificationModel]) -> None:
        """Copied (see the module docstring); the changes are marked "ours"."""
        self._register_and_check_atleast_one_model_is_ready(models)
        rest_options = dict(
            access_log_format=self.access_log_format,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
        )
        rest_settings = dict(max_body_bytes=self.max_body_bytes, drain_s=self.drain_s,  # ours
                             read_timeout_s=self.read_timeout_s,
                             middlewares=self.rest_middlewares, fast_path=self.rest_fast_path)
        marker = None
        if self.workers > 1:
            marker = shutdown.share_with_workers()  # ours: before they are spawned, they inherit the environment
            self._rest_multiprocess_server = RESTServerMultiProcess(
                FASTAPI_APP_IMPORT_STRING, self.dataplane, self.model_repository_extension, self.http_port,
                **rest_options,
                log_config_file=logs.applied_logging_config,  # ours: a dict, each spawned worker logs like this one
            )
            self._rest_multiprocess_server._rest_server.configure(**rest_settings)  # ours
            self.servers.append(self._rest_multiprocess_server.start())
        else:
            self._rest_server = RESTServer(
                FASTAPI_APP_IMPORT_STRING, self.dataplane, self.model_repository_extension, self.http_port,
                **rest_options,
            )
            self._rest_server.configure(**rest_settings)  # ours
            self.servers.append(self._rest_server.start())
        if self.enable_grpc:
            self._grpc_server = GRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                # ours: from our parse, not KServe's import-time `args`
                kwargs={"grpc_max_send_message_length": self.grpc_max_send_message_length,
                        "grpc_max_receive_message_length": self.max_body_bytes,
                        "grpc_options": self.grpc_options},  # ours: runtime/grpc.py server_options
                grace_period=self.grace_period,
            )
            self._grpc_server.extra_interceptors = self.grpc_interceptors  # ours
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        # ours: asyncio.run below makes its loop from this policy. Not with --workers: there every connection
        # went to one worker (test_metrics.py), for a reason not yet understood, so that case keeps asyncio.
        if self.workers == 1:
            use_uvloop(self.event_loop)
        try:
            asyncio.run(self._serve())
        finally:
            if marker is not None:  # ours
                marker.unlink(missing_ok=True)
