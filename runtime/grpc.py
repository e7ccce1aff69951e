"""What the gRPC server adds to KServe's: the access log and metrics of ``ModelInfer``, and a base for interceptors.

The access log is a server interceptor around ``ModelInfer``, innermost, so it sees
our ``ServiceError`` before KServe's interceptor turns it into a status; the
``status`` label is the HTTP status of the same error in the table, so one error
ratio covers both protocols.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import grpc
from grpc.aio import ServerInterceptor

from contract.errors import ERRORS, ErrorType, ServiceError
from runtime.accesslog import VersionOf, metric_label, record
from runtime.kserve.errors import error_type_of
from runtime.metrics import ERRORS_TOTAL

if TYPE_CHECKING:
    from runtime.settings import ServiceSettings

GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"


def server_options(settings: ServiceSettings) -> list[tuple[str, int]]:
    """gRPC core's connection bounds, as server channel args: slow or stalled clients cannot hold a connection.

    REST has runtime/slowclients.py; on gRPC the HTTP/2 connections are gRPC core's, whose
    defaults hold them without bound (KServe's GRPCServer passes only the message sizes). Each
    arg is read by grpcio 1.85's core (grpc/grpc src/core):
    - ``grpc.server_handshake_timeout_ms`` (chttp2_server.cc ``GetConnectionDeadline``, default 2 min):
      the handshake, then the client's first SETTINGS frame (``OnHandshakeDoneLocked`` arms a timer that
      ``OnReceiveSettings`` cancels): a socket that sends nothing, or the preface alone, is closed then.
    - ``grpc.max_connection_idle_ms`` (the max-idle filter, default infinite): no RPC in flight that long.
    - ``grpc.max_connection_age_ms`` / ``_grace_ms`` (the max-age filter, default infinite; ±10% jitter):
      GOAWAY at the age, then the connection is closed after the grace whatever is in flight, which
      bounds an RPC whose message never arrives (gRPC core has no per-stream read deadline).
    - ``grpc.keepalive_time_ms`` / ``_timeout_ms`` (chttp2 keepalive, server default 2 h / 20 s): with
      RPCs in flight, a ping a peer does not answer closes the connection sooner (a raw socket, a peer gone).
    - ``grpc.max_concurrent_streams`` (chttp2 SETTINGS, default unlimited): RPCs at once on one connection.
    Pings from clients stay under core's enforcement defaults (``grpc.http2.min_ping_interval_without_data_ms``
    5 min, ``grpc.http2.max_ping_strikes`` 2: a client pinging more often is sent GOAWAY).
    """
    def ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))

    return [
        ("grpc.server_handshake_timeout_ms", ms(settings.read_timeout_s)),
        ("grpc.max_connection_idle_ms", ms(settings.grpc_connection_idle_s)),
        ("grpc.max_connection_age_ms", ms(settings.grpc_connection_age_s)),
        ("grpc.max_connection_age_grace_ms", ms(settings.grpc_connection_age_grace_s)),
        ("grpc.keepalive_time_ms", ms(settings.grpc_keepalive_s)),
        ("grpc.keepalive_timeout_ms", ms(settings.grpc_keepalive_s)),
        ("grpc.max_concurrent_streams", settings.grpc_max_concurrent_streams),
    ]


class ModelInferInterceptor(ServerInterceptor):
    """Wraps gRPC ``ModelInfer`` calls (every other method passes untouched); subclasses say how."""

    def wrap(self, infer, metadata: dict):
        """An ``async (request, context)`` callable that calls ``infer`` around what the subclass adds."""
        raise NotImplementedError

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method != GRPC_INFER:
            return handler
        metadata = dict(details.invocation_metadata or ())
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self.wrap(handler.unary_unary, metadata),
                request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            # An inner interceptor's ModelInfer that receives its one message only once it lets the call in
            # (transformer/ratelimit.py): wrapped the same way, the message still pulled by the inner handler.
            wrapped = self.wrap(lambda pending, context: handler.stream_unary(pending, context), metadata)

            async def pulled(request_iterator, context):
                return await wrapped(PendingMessage(request_iterator), context)

            return grpc.stream_unary_rpc_method_handler(
                pulled, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return handler


def refusal(error: ServiceError, retry_after: str, hold=None):
    """A handler that answers ``error`` without reading the request: stream-unary, so the server hands it
    an iterator it never advances instead of a message it received and decoded first (grpcio's asyncio
    server, aio/server.pyx.pxi ``_handle_stream_unary_rpc``). ``hold``: an awaitable callable to wait on
    first (predictor/share.py holds a refusal so that retrying at once costs the client, not us)."""

    async def refused(request_iterator, context):
        if hold is not None:
            await hold()
        refuse(context, error, retry_after)

    return grpc.stream_unary_rpc_method_handler(refused)


def refuse(context, error: ServiceError, retry_after: str):
    """Raise ``error`` from a handler, with ``retry-after`` trailing metadata."""
    context.set_trailing_metadata((("retry-after", retry_after),))
    raise error  # the error interceptor (runtime/kserve/errors.py) wraps the handler too: the status


class PendingMessage:
    """A stream-unary ModelInfer's request iterator, standing for its one message in ``wrap``'s callables:
    ``model_name`` is the message's once the handler has pulled it, else "" (a call refused unread)."""

    def __init__(self, iterator):
        self._iterator = iterator
        self.message = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        self.message = await self._iterator.__anext__()
        return self.message

    @property
    def model_name(self) -> str:
        return self.message.model_name if self.message is not None else ""


class GrpcAccessLog(ModelInferInterceptor):
    """The access line, request metrics and error count of every gRPC ``ModelInfer``."""

    def __init__(self, model_version: VersionOf):
        self.model_version = model_version

    def wrap(self, infer, metadata: dict):
        async def observed(request, context):
            started = time.perf_counter()
            status, error_type = 500, None
            try:
                response = await infer(request, context)
                status = 200
                return response
            except Exception as exc:
                error_type = error_type_of(exc)
                status = ERRORS[error_type].http_status
                ERRORS_TOTAL.labels(metric_label(request.model_name, self.model_version), error_type).inc()
                raise
            finally:
                record(request.model_name, self.model_version, "gRPC", "ModelInfer", status,
                       time.perf_counter() - started, metadata.get("x-request-id", "-"), None, error_type)

        return observed


def repository_disabled(what: str) -> ServiceError:
    """KServe's model repository extension is closed here (runtime/rest.py says why)."""
    return ServiceError(ErrorType.ROUTE_NOT_FOUND,
                        f"{what} models is not offered: this server serves the model it started with.")
