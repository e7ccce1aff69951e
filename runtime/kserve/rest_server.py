"""KServe's REST server with our middleware, routes, exception handlers and drain; its ``--workers`` variant."""

from __future__ import annotations

import os
import signal
import time

from fastapi import FastAPI
from fastapi.middleware import Middleware
from kserve.protocol.rest import server as kserve_rest
from kserve.protocol.rest.multiprocess import server as kserve_multiprocess
from timing_asgi import TimingMiddleware

from runtime import guard, rest, shutdown, slowclients, tracing
from runtime.kserve.dataplane import version_or_lookup_error
from runtime.metrics import metrics_handler


class DrainingServer(kserve_rest._RefreshingServer):
    """uvicorn's server with the drain of runtime/shutdown.py: the first SIGTERM flips readiness and
    stops the server ``drain_s`` later; uvicorn then answers every request it has before it exits."""

    drain_s = 0.0
    _drain_until: float | None = None

    def handle_exit(self, sig, frame) -> None:
        if sig == signal.SIGTERM and self._drain_until is None and self.drain_s > 0 and not shutdown.draining():
            shutdown.begin(self.drain_s)
            self._captured_signals.append(sig)  # raised again after serving: KServe's handler then stops gRPC
            self._drain_until = time.monotonic() + self.drain_s
            return
        shutdown.begin()
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


class RESTServer(kserve_rest.RESTServer):
    max_body_bytes: int  # set per server by configure()
    extra_middlewares: tuple = ()  # (class, kwargs), inside the access log
    fast_path = None  # a middleware class taking (app, registry, max_body_bytes): innermost, before routing

    def configure(self, max_body_bytes: int, drain_s: float, middlewares: tuple, fast_path=None,
                  read_timeout_s: float = 30.0) -> None:
        """ModelServer.start's settings; also for the instance KServe's multi-process server built."""
        self.max_body_bytes = max_body_bytes
        self.extra_middlewares = tuple(middlewares)
        self.fast_path = fast_path
        self._server.__class__ = DrainingServer
        self._server.drain_s = drain_s
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 by default (KServe keeps its default), and
        # Knative's queue-proxy is 127.0.0.1 in the pod: a client's own header became the peer
        # address the rate limit keys by. Only uvicorn's FORWARDED_ALLOW_IPS, naming the proxies
        # to trust, turns it back on (tests/integration/test_forwarded_for.py).
        self.config.proxy_headers = bool(os.environ.get("FORWARDED_ALLOW_IPS"))
        # uvicorn's own HTTP protocol with a deadline on reading each request and a cap on its headers
        # (runtime/slowclients.py); on the config, which --workers processes receive pickled
        protocol = slowclients.protocol_class()
        wrap = getattr(fast_path, "wrap_protocol", None)  # the fast path's own layer below ASGI, if it has one
        self.config.http = wrap(protocol) if wrap is not None else protocol
        self.config.read_timeout_s = read_timeout_s

    def _add_middlewares(self, app: FastAPI) -> None:
        super()._add_middlewares(app)
        # KServe's TimingMiddleware writes two trace log lines per request and calls
        # getrusage four times: measured at a third of the transformer's CPU on a hit,
        # for numbers that /metrics already has as histograms. Dropped.
        app.user_middleware[:] = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
        app.add_middleware(guard.RequestGuard)  # inside the body limit: it reads bodies the limit has let in
        app.add_middleware(rest.BodySizeLimit, max_bytes=self.max_body_bytes)
        for middleware, options in self.extra_middlewares:  # outside the body limit: checked before the body is read
            app.add_middleware(middleware, **options)
        if tracing.ENABLED:  # only then: no layer at all on the hot path when tracing is off
            app.add_middleware(tracing.TraceRequests)
        app.add_middleware(rest.AccessLog, model_version=self._served_version)  # added last: outermost
        if self.fast_path is not None:  # innermost of all (KServe's too), so every layer still wraps its answers
            app.user_middleware.append(Middleware(self.fast_path, registry=self.dataplane.model_registry,
                                                  max_body_bytes=self.max_body_bytes))
        app.state.is_served = self._is_served  # errors are counted by model only for served models
        # the served model by name, for middleware that asks it before the body is read (predictor/share.py):
        # this process's own copy, with --workers too (the registry is the one the handlers use)
        app.state.model_of = self.dataplane.model_registry.get_model

    def _is_served(self, model_name: str) -> bool:
        return self.dataplane.model_registry.get_model(model_name) is not None

    def _served_version(self, model_name: str) -> str | None:
        return version_or_lookup_error(self.dataplane, model_name)

    def _register_endpoints(self, app: FastAPI) -> None:
        # Registered before KServe's routes so that these answer first: KServe's V2
        # metadata drops our parameters, and its V1 `GET /v1/models/{name}` would
        # otherwise take `GET /v1/models/x:predict` for a model named "x:predict".
        app.add_api_route("/v2/models/{model_name}", self._model_metadata, methods=["GET"])
        # Before KServe's /metrics, which reads one process's registry only (kserve issue 2979).
        app.add_api_route("/metrics", metrics_handler, methods=["GET"])
        for verb in ("predict", "explain"):
            app.add_api_route(
                f"/v1/models/{{model_name}}:{verb}", rest.method_not_allowed, methods=["GET", "PUT", "DELETE", "PATCH"]
            )
        # KServe's model repository extension lets any client load and unload models: one
        # `POST /v2/repository/models/<name>/unload` took the served model down (found by
        # tests/integration/test_fuzz.py). Each server here serves the one model it started
        # with, so these answer 404 route_not_found first. gRPC: InferenceServicer below.
        # KServe's own shapes first: `{model_name}` matches a newline, which `{path:path}` does not.
        for path in ("/v2/repository/models/{model_name}/load", "/v2/repository/models/{model_name}/unload",
                     "/v2/repository/{path:path}"):
            app.add_api_route(path, rest.repository_disabled, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        super()._register_endpoints(app)

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        rest.install_rest_handlers(app)

    async def _model_metadata(self, model_name: str) -> dict:
        metadata = await self.dataplane.model_metadata(model_name)
        return rest.with_model_parameters(metadata, self.dataplane.get_model_from_registry(model_name))


class PatientWorkerProcess(kserve_multiprocess.RESTServerProcess):
    """A ``--workers`` process that may take longer than KServe's 5 s to answer a health ping.

    A spawned worker imports kserve (and the model's libraries) before its pong thread
    starts; on a CPU-throttled pod or a busy machine that takes longer than 5 s, and
    KServe (0.21.0, ``keep_subprocess_alive``) then kills it and spawns another, which is
    as slow: the workers never start. A dead worker is still replaced at once
    (``is_alive`` checks the process first); only a hung one waits the longer timeout.
    """

    def is_alive(self, timeout: float = 60) -> bool:
        return super().is_alive(timeout)


def install_patient_workers() -> None:
    """KServe's RESTServerMultiProcess makes its workers by a module-level name (init_processes,
    keep_subprocess_alive, pinned in pins.py): rebinding it is the one way in. Called by
    runtime.kserve.install() at server start, never at import, so importing this package changes
    nothing in KServe; idempotent."""
    kserve_multiprocess.RESTServerProcess = PatientWorkerProcess


class RESTServerMultiProcess(kserve_multiprocess.RESTServerMultiProcess):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # KServe builds its own RESTServer here; ours adds no state, only overrides.
        self._rest_server.__class__ = RESTServer
