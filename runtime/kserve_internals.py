"""Every KServe internal we copy or override, in one fenced room (copied from and pinned to kserve==0.21.0).

KServe registers its own exception handlers (``{"error": ...}`` without an
``error_type``) when it builds the FastAPI app, after anything we could register
beforehand, and ``ModelServer.start`` is the only place that picks the server
classes; so those classes are subclassed here and ``start`` is repeated with them.
What each override adds lives outside this room (runtime/rest.py, runtime/grpc.py,
runtime/shutdown.py); what stays here is the coupling to KServe's (and uvicorn's)
insides. ``UPSTREAM`` pins a hash of the source of each upstream function below, and
tests/unit/test_kserve_internals.py fails when a KServe or uvicorn upgrade changes
one: re-read it, bring the copy or override in step, then update the hash.

Copied (the whole function repeated, with our changes marked):
  - ``kserve.model_server.ModelServer.start``: our REST/gRPC server classes, our
    logging config for ``--workers`` processes, gRPC options from our parse (not
    KServe's import-time ``args``), the drain marker for worker processes.
  - ``kserve.protocol.grpc.server.GRPCServer.start``: our servicer and interceptors.
  - ``kserve.protocol.grpc.servicer.InferenceServicer.ModelInfer``: the model's response
    headers (x-cache, the timings of contract/timings.py) sent as initial metadata.
  - ``kserve.inference_client.InferenceGRPCClient.infer`` (``grpc_infer``): keeping the
    call, whose initial metadata has the predictor's timings.
Overridden or extended:
  - ``ModelServer.__init__`` (our DataPlane replaces ``self.dataplane``), ``ModelServer.stop``
    (the drain first; once only), ``ModelServer._serve`` (private; waits for every server).
  - ``RESTServer.__init__`` (its ``self._server``, a ``_RefreshingServer``, gets our
    drain by a ``__class__`` swap), ``RESTServer._add_middlewares``,
    ``_register_endpoints`` and ``_add_exception_handlers`` (private; extended).
  - ``RESTServerMultiProcess.__init__``: the ``RESTServer`` it builds gets our class.
  - ``RESTServerProcess.is_alive`` (60 s instead of 5 s for a worker's first health
    ping), installed by rebinding the module-level name ``RESTServerProcess`` that
    ``RESTServerMultiProcess.init_processes`` and ``keep_subprocess_alive`` call.
  - ``kserve.protocol.rest.server._RefreshingServer`` (a private class; subclassed), and
    uvicorn's ``Server.handle_exit`` / ``on_tick`` (we append to ``_captured_signals``).
  - ``DataPlane.ready``, ``model_ready``, ``decode_inference_request`` (extended);
    ``DataPlane.explain`` (replaced: KServe's returns the request's headers as the response's).
  - ``InferenceServicer.RepositoryModelLoad`` / ``RepositoryModelUnload`` (replaced).
Private attributes relied on: ``InferenceGRPCClient._client_stub``, ``RESTServer._server``, ``RESTServerMultiProcess._rest_server``,
``GRPCServer._server`` / ``_port`` / ``_kwargs`` / ``_data_plane`` / ``_model_repository_extension``,
``uvicorn.Server._captured_signals``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from concurrent import futures

import kserve
import pydantic
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from grpc import aio
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING, INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.inference_client import InferenceGRPCClient
from kserve.model import InferenceVerb
from kserve.protocol import dataplane as kserve_dataplane
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc import server as kserve_grpc
from kserve.protocol.grpc import servicer as kserve_servicer
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.protocol.rest import server as kserve_rest
from kserve.protocol.rest.multiprocess import server as kserve_multiprocess
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from kserve.utils.utils import to_headers
from timing_asgi import TimingMiddleware

from contract import timings
from contract.errors import ServiceError
from contract.model import TextClassificationModel
from runtime import guard, logs, rest, shutdown, tracing
from runtime.grpc import GrpcAccessLog, repository_disabled
from runtime.metrics import metrics_handler

logger = logging.getLogger(__name__)

KSERVE_VERSION = "0.21.0"
# sha256 of inspect.getsource(...), first 16 hex digits; tests/unit/test_kserve_internals.py checks them.
UPSTREAM = {
    "kserve.model_server.ModelServer.start": "efa96502018b04e9",
    "kserve.model_server.ModelServer.__init__": "1029569ff98894af",
    "kserve.model_server.ModelServer.stop": "c87cc006e46d8397",
    "kserve.model_server.ModelServer._serve": "ff3ff3ccb85e49d3",
    "kserve.protocol.grpc.server.GRPCServer.start": "f4ea7b4eb6f0d9f7",
    "kserve.protocol.rest.server.RESTServer.__init__": "c85b4ca79cab7f7c",
    "kserve.protocol.rest.server.RESTServer._add_middlewares": "eb71860ac9500c56",
    "kserve.protocol.rest.server.RESTServer._register_endpoints": "841b714394633cb5",
    "kserve.protocol.rest.server.RESTServer._add_exception_handlers": "ca0a28c1b356a6eb",
    "kserve.protocol.rest.server._RefreshingServer": "58f0ab1fdd3602cc",
    "kserve.protocol.rest.multiprocess.server.RESTServerMultiProcess.__init__": "ff15cd5a0c374e22",
    "kserve.protocol.dataplane.DataPlane.ready": "092ec924c2558e83",
    "kserve.protocol.dataplane.DataPlane.model_ready": "6c7910fbb1c9d6b7",
    "kserve.protocol.dataplane.DataPlane.decode_inference_request": "d9b169889aa3e564",
    "kserve.protocol.dataplane.DataPlane.explain": "7995ba27efb3032f",
    "kserve.protocol.grpc.servicer.InferenceServicer.RepositoryModelLoad": "67fee58ff64a6edd",
    "kserve.protocol.grpc.servicer.InferenceServicer.RepositoryModelUnload": "d8a895c6fdc3d1cc",
    "runtime.kserve_internals.KSERVE_WORKER_PROCESS.is_alive": "b5d7ea48fc1a204a",
    "kserve.protocol.rest.multiprocess.server.RESTServerMultiProcess.init_processes": "75142004d4ac292e",
    "kserve.protocol.rest.multiprocess.server.RESTServerMultiProcess.keep_subprocess_alive": "22dd987ecf8b4f41",
    "kserve.protocol.grpc.servicer.InferenceServicer.ModelInfer": "49bf48c9159ebe9f",
    "kserve.inference_client.InferenceGRPCClient.infer": "e5f3295be84562b3",
    "uvicorn.Server.handle_exit": "553276efa26e09ea",
    "uvicorn.Server.on_tick": "60ea49b06ccf68c1",
}


def _version_or_lookup_error(dataplane: kserve_dataplane.DataPlane, model_name: str) -> str | None:
    model = dataplane.model_registry.get_model(model_name)
    if model is None:
        raise LookupError(model_name)
    return model.model_version if isinstance(model, TextClassificationModel) else None


class DataPlane(kserve_dataplane.DataPlane):
    async def ready(self) -> bool:
        """Not ready once shutting down (runtime/shutdown.py); inference goes on meanwhile."""
        return not shutdown.draining() and await super().ready()

    async def model_ready(self, model_name: str, disable_predictor_health_check: bool = False) -> bool:
        # KServe's inference routes call this with disable_predictor_health_check=True: those
        # must keep answering during the drain; only the readiness endpoints (False) flip.
        if shutdown.draining() and not disable_predictor_health_check:
            self.get_model_from_registry(model_name)  # an unknown model is still a 404
            return False
        return await super().model_ready(model_name, disable_predictor_health_check)

    async def explain(self, model_name: str, request, headers: dict | None = None):
        """KServe's explain (kserve 0.21.0) returns the request's headers as the response's, the request's
        content-type included; here only the model's own response headers are returned."""
        model = await self.get_model(model_name)
        return await model(request, verb=InferenceVerb.EXPLAIN, headers=headers)

    def decode_inference_request(self, body, headers, model_name):
        """KServe's V2 decoding, with JSON sent without a JSON content type accepted.

        FastAPI hands the V2 body over as bytes unless the content type says JSON, and
        KServe then insists on the binary-extension header. Clients such as
        tritonclient.http send plain JSON with no content type at all.
        """
        if isinstance(body, bytes) and INFERENCE_CONTENT_LENGTH_HEADER not in headers:
            try:
                body = InferenceRequest.model_validate_json(body)
            except pydantic.ValidationError as exc:
                raise RequestValidationError(exc.errors()) from None
        try:
            return super().decode_inference_request(body, headers, model_name)
        except (InvalidInput, ServiceError):
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # KServe indexes the JSON header unchecked
            raise ServiceError(
                "invalid_request", f"The binary V2 request's JSON header is malformed ({type(exc).__name__}: {exc})."
            ) from None


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

    def configure(self, max_body_bytes: int, drain_s: float, middlewares: tuple) -> None:
        """ModelServer.start's settings; also for the instance KServe's multi-process server built."""
        self.max_body_bytes = max_body_bytes
        self.extra_middlewares = tuple(middlewares)
        self._server.__class__ = DrainingServer
        self._server.drain_s = drain_s

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
        app.state.is_served = self._is_served  # errors are counted by model only for served models

    def _is_served(self, model_name: str) -> bool:
        return self.dataplane.model_registry.get_model(model_name) is not None

    def _served_version(self, model_name: str) -> str | None:
        return _version_or_lookup_error(self.dataplane, model_name)

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


class InferenceServicer(kserve_servicer.InferenceServicer):
    """KServe's servicer without the model repository extension (see RESTServer._register_endpoints),
    and with the model's response headers sent as initial metadata (KServe drops them)."""

    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:
        """Copied (see the module docstring), plus the metadata: x-cache and the timings of contract/timings.py,
        as REST sends them in headers."""
        started = time.perf_counter()
        self.validate_grpc_request(request)
        response_body, response_headers = await self._data_plane.infer(
            request=InferRequest.from_grpc(request), headers=to_headers(context), model_name=request.model_name
        )
        metadata = [(name.lower(), str(value)) for name, value in response_headers.items()
                    if name.lower() not in ("content-type", "content-length")]
        await context.send_initial_metadata((*metadata, (timings.TOTAL_TIME, timings.ms(time.perf_counter() - started))))
        if isinstance(response_body, pb.ModelInferResponse):
            return response_body
        if isinstance(response_body, InferResponse):
            return response_body.to_grpc()
        return pb.ModelInferResponse(id=response_body["id"], model_name=response_body["model_name"],
                                     outputs=response_body["outputs"])

    async def RepositoryModelLoad(self, request, context):
        raise repository_disabled("Loading")

    async def RepositoryModelUnload(self, request, context):
        raise repository_disabled("Unloading")


async def grpc_infer(client: InferenceGRPCClient, request: InferRequest, metadata: tuple,
                     timeout_s: float) -> tuple[InferResponse, dict]:
    """Copied (see the module docstring): ``client.infer``, with the answer's initial metadata too."""
    call = client._client_stub.ModelInfer(request=request.to_grpc(), metadata=metadata, timeout=timeout_s)
    response = await call
    return InferResponse.from_grpc(response), dict(await call.initial_metadata() or ())


class GRPCServer(kserve_grpc.GRPCServer):
    extra_interceptors: tuple = ()  # innermost, after the access log (which so sees their errors)

    async def start(self, max_workers):
        """Copied (see the module docstring): our servicer; our access log and metrics as the innermost
        interceptor, so it sees ServiceError before KServe's interceptor makes it a status."""
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(
                LoggingInterceptor(),
                ExceptionToStatusInterceptor(),
                GrpcAccessLog(lambda name: _version_or_lookup_error(self._data_plane, name)),  # ours
                *((tracing.GrpcTrace(),) if tracing.ENABLED else ()),  # ours: only when tracing is on
                *self.extra_interceptors,  # ours
            ),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self._data_plane, self._model_repository_extension), self._server  # ours
        )
        listen_addr = f"[::]:{self._port}"
        self._server.add_insecure_port(listen_addr)
        kserve_grpc.logger.info(f"Starting gRPC server with {max_workers} workers")
        kserve_grpc.logger.info("Starting gRPC server on %s", listen_addr)
        await self._server.start()
        await self._server.wait_for_termination()


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


# KServe's RESTServerMultiProcess makes its workers by this module-level name (init_processes, keep_subprocess_alive).
KSERVE_WORKER_PROCESS = kserve_multiprocess.RESTServerProcess  # the original, for the pin in UPSTREAM
kserve_multiprocess.RESTServerProcess = PatientWorkerProcess


class RESTServerMultiProcess(kserve_multiprocess.RESTServerMultiProcess):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # KServe builds its own RESTServer here; ours adds no state, only overrides.
        self._rest_server.__class__ = RESTServer


class ModelServer(kserve.ModelServer):
    def __init__(self, *args, max_body_bytes: int, grpc_max_send_message_length: int, drain_s: float,
                 rest_middlewares: tuple = (), grpc_interceptors: tuple = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.max_body_bytes = max_body_bytes
        self.grpc_max_send_message_length = grpc_max_send_message_length
        self.drain_s = drain_s
        self.rest_middlewares = tuple(rest_middlewares)
        self.grpc_interceptors = tuple(grpc_interceptors)
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
                             middlewares=self.rest_middlewares)
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
                        "grpc_max_receive_message_length": self.max_body_bytes},
                grace_period=self.grace_period,
            )
            self._grpc_server.extra_interceptors = self.grpc_interceptors  # ours
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        try:
            asyncio.run(self._serve())
        finally:
            if marker is not None:  # ours
                marker.unlink(missing_ok=True)

