"""KServe's ModelServer with the project's error table and model metadata installed.

KServe registers its own exception handlers (``{"error": ...}`` without an
``error_type``) when it builds the FastAPI app, after anything we could register
beforehand. So the REST server class is subclassed to add ours *after* KServe's, and
``ModelServer.start`` is repeated with that class: it is the only place KServe picks
the class. Keep ``start`` in step with the pinned kserve version (see pyproject.toml).

It also adds what KServe leaves out: a graceful shutdown that flips readiness first
(contract/shutdown.py), and a place for a service's own middleware and gRPC
interceptors (the transformer's rate limit).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from concurrent import futures

import kserve
import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from grpc import aio
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING, INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.model import BaseKServeModel
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

from contract import flags, multiproc, shutdown, timings, tracing
from contract.accesslog import AccessLog, GrpcAccessLog
from contract.errors import ServiceError, answer, error_response, install_rest_handlers, method_not_allowed
from contract.metrics import INFO, metrics_handler
from contract.schema import Limits

logger = logging.getLogger(__name__)


def served_version(model) -> str | None:
    """The model version a served model reports (its metadata parameters), if it reports one."""
    describe = getattr(model, "metadata_parameters", None)
    return describe().get("model_version") if describe is not None else None


class BodySizeLimit:
    """ASGI middleware: bodies over ``max_bytes`` get 413 before they are buffered whole."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> ServiceError:
        return ServiceError(
            "payload_too_large", f"The body is {size} bytes; the limit is {self.max_bytes} bytes per request."
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            error = self._too_large(declared.decode())
            return await error_response(error.error_type, error.message)(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # chunked bodies declare no length
                raise self._too_large(f"more than {received}")
            return message

        await self.app(scope, counting_receive, send)


class DataPlane(kserve_dataplane.DataPlane):
    async def ready(self) -> bool:
        """Not ready once shutting down (contract/shutdown.py); inference goes on meanwhile."""
        return not shutdown.draining() and await super().ready()

    async def model_ready(self, model_name: str, disable_predictor_health_check: bool = False) -> bool:
        # KServe's inference routes call this with disable_predictor_health_check=True: those
        # must keep answering during the drain; only the readiness endpoints (False) flip.
        if shutdown.draining() and not disable_predictor_health_check:
            self.get_model_from_registry(model_name)  # an unknown model is still a 404
            return False
        return await super().model_ready(model_name, disable_predictor_health_check)

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


class RESTServer(kserve_rest.RESTServer):
    max_body_bytes = Limits().max_body_bytes  # set per server by configure()
    extra_middlewares: tuple = ()  # (class, kwargs), inside the access log

    def configure(self, max_body_bytes: int, drain_s: float, middlewares: tuple) -> None:
        """ModelServer.start's settings; also for the instance KServe's multi-process server built."""
        self.max_body_bytes = max_body_bytes
        self.extra_middlewares = tuple(middlewares)
        self._server.__class__ = shutdown.DrainingServer
        self._server.drain_s = drain_s

    def _add_middlewares(self, app: FastAPI) -> None:
        super()._add_middlewares(app)
        # KServe's TimingMiddleware writes two trace log lines per request and calls
        # getrusage four times: measured at a third of the transformer's CPU on a hit,
        # for numbers that /metrics already has as histograms. Dropped.
        app.user_middleware[:] = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
        app.add_middleware(BodySizeLimit, max_bytes=self.max_body_bytes)
        for middleware, options in self.extra_middlewares:  # outside the body limit: checked before the body is read
            app.add_middleware(middleware, **options)
        if tracing.ENABLED:  # only then: no layer at all on the hot path when tracing is off
            app.add_middleware(tracing.TraceRequests)
        app.add_middleware(AccessLog, model_version=self._served_version)  # added last: outermost, sees every answer
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
                f"/v1/models/{{model_name}}:{verb}", method_not_allowed, methods=["GET", "PUT", "DELETE", "PATCH"]
            )
        # KServe's model repository extension lets any client load and unload models: one
        # `POST /v2/repository/models/<name>/unload` took the served model down (found by
        # tests/integration/test_fuzz.py). Each server here serves the one model it started
        # with, so these answer 404 route_not_found first. gRPC: InferenceServicer below.
        # KServe's own shapes first: `{model_name}` matches a newline, which `{path:path}` does not.
        for path in ("/v2/repository/models/{model_name}/load", "/v2/repository/models/{model_name}/unload",
                     "/v2/repository/{path:path}"):
            app.add_api_route(path, repository_disabled, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        super()._register_endpoints(app)

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        install_rest_handlers(app)

    async def _model_metadata(self, model_name: str) -> dict:
        """V2 model metadata plus the model's own ``parameters`` (label order, revision).

        The V2 metadata schema has no field for label names, and KServe's response model
        drops unknown keys, hence this route.
        """
        metadata = await self.dataplane.model_metadata(model_name)
        model = self.dataplane.get_model_from_registry(model_name)
        describe = getattr(model, "metadata_parameters", None)
        if describe is not None:
            metadata["parameters"] = describe()
            if metadata["parameters"].get("model_version"):
                metadata["versions"] = [metadata["parameters"]["model_version"]]
        return metadata


def _version_or_lookup_error(dataplane: kserve_dataplane.DataPlane, model_name: str) -> str | None:
    model = dataplane.model_registry.get_model(model_name)
    if model is None:
        raise LookupError(model_name)
    return served_version(model)


async def repository_disabled(request: Request) -> JSONResponse:
    return answer(request, "route_not_found", f"No route {request.method} {request.url.path}: this server serves "
                                              "the model it started with; loading and unloading are not offered.")


class InferenceServicer(kserve_servicer.InferenceServicer):
    """KServe's servicer without the model repository extension (see RESTServer._register_endpoints),
    and with the model's response headers sent as initial metadata (KServe drops them)."""

    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:
        """``kserve.protocol.grpc.servicer.InferenceServicer.ModelInfer`` (kserve 0.21.0), plus the metadata:
        x-cache and the timings of contract/timings.py, as REST sends them in headers."""
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
        raise ServiceError("route_not_found", "Loading models is not offered: this server serves the model it started with.")

    async def RepositoryModelUnload(self, request, context):
        raise ServiceError("route_not_found", "Unloading models is not offered: this server serves the model it started with.")


class GRPCServer(kserve_grpc.GRPCServer):
    extra_interceptors: tuple = ()  # innermost, after the access log (which so sees their errors)

    async def start(self, max_workers):
        """``kserve.protocol.grpc.server.GRPCServer.start`` (kserve 0.21.0) with our access log and metrics
        as the innermost interceptor: it sees ServiceError before KServe's interceptor makes it a status."""
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(
                LoggingInterceptor(),
                ExceptionToStatusInterceptor(),
                GrpcAccessLog(lambda name: _version_or_lookup_error(self._data_plane, name)),
                *((tracing.GrpcTrace(),) if tracing.ENABLED else ()),
                *self.extra_interceptors,
            ),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self._data_plane, self._model_repository_extension), self._server
        )
        listen_addr = f"[::]:{self._port}"
        self._server.add_insecure_port(listen_addr)
        kserve_grpc.logger.info(f"Starting gRPC server with {max_workers} workers")
        kserve_grpc.logger.info("Starting gRPC server on %s", listen_addr)
        await self._server.start()
        await self._server.wait_for_termination()


class RESTServerMultiProcess(kserve_multiprocess.RESTServerMultiProcess):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # KServe builds its own RESTServer here; ours adds no state, only overrides.
        self._rest_server.__class__ = RESTServer


class ModelServer(kserve.ModelServer):
    def __init__(self, *args, limits: Limits = Limits(), drain_s: float = 0.0, rest_middlewares: tuple = (),
                 grpc_interceptors: tuple = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.drain_s = drain_s
        self.rest_middlewares = tuple(rest_middlewares)
        self.grpc_interceptors = tuple(grpc_interceptors)
        self.dataplane = DataPlane(model_registry=self.registered_models)

    def stop(self, sig: int) -> None:
        """KServe's stop, after the drain of contract/shutdown.py when this process has not drained yet.

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

    def start(self, models: list[BaseKServeModel]) -> None:
        """``kserve.ModelServer.start`` (kserve 0.21.0) with this module's REST servers."""
        self._register_and_check_atleast_one_model_is_ready(models)
        for model in models:
            INFO.labels(model.name, served_version(model) or "").set(1)
        if self.workers > 1 and not multiproc.enabled():
            logger.warning("--workers %d without Prometheus multiprocess mode: each scrape of /metrics sees one "
                           "worker's counts (call contract.multiproc.enable() first in __main__)", self.workers)
        rest_options = dict(
            access_log_format=self.access_log_format,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
        )
        app = FASTAPI_APP_IMPORT_STRING
        rest_settings = dict(max_body_bytes=self.limits.max_body_bytes, drain_s=self.drain_s,
                             middlewares=self.rest_middlewares)
        if self.workers > 1:
            marker = shutdown.share_with_workers()  # before they are spawned: they inherit the environment
            self._rest_multiprocess_server = RESTServerMultiProcess(
                app, self.dataplane, self.model_repository_extension, self.http_port, **rest_options,
                log_config_file=flags.applied_logging_config,  # a dict: each spawned worker logs like this process
            )
            self._rest_multiprocess_server._rest_server.configure(**rest_settings)
            self.servers.append(self._rest_multiprocess_server.start())
        else:
            marker = None
            self._rest_server = RESTServer(
                app, self.dataplane, self.model_repository_extension, self.http_port, **rest_options
            )
            self._rest_server.configure(**rest_settings)
            self.servers.append(self._rest_server.start())
        if self.enable_grpc:
            self._grpc_server = GRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs={**vars(kserve.model_server.args), "grpc_max_receive_message_length": self.limits.max_body_bytes},
                grace_period=self.grace_period,
            )
            self._grpc_server.extra_interceptors = self.grpc_interceptors
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        try:
            asyncio.run(self._serve())
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)


def serve(model: BaseKServeModel, args, **server_options) -> None:
    """Start ``model`` with KServe's standard server flags as parsed by a ``__main__`` module."""
    from contract.flags import limits_from

    ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        limits=limits_from(args),
        drain_s=args.shutdown_drain_s,
        # From our parse, not KServe's import-time parse_known_args, which reads `--access_log false`
        # as an abbreviation of --access_log_format and then fails on the missing asgi_logger.
        access_log_format=args.access_log_format,
        **server_options,
    ).start([model])
