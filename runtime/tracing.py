"""OpenTelemetry tracing for both services: off, and free, unless an OTLP endpoint is set.

The switch is the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), read once at import; ``OTEL_SDK_DISABLED=true``
wins over it. Everything else is the SDK's own standard environment: the sampler
(``OTEL_TRACES_SAMPLER=parentbased_traceidratio``, ``OTEL_TRACES_SAMPLER_ARG=0.1``),
the service name (``OTEL_SERVICE_NAME``, defaulted by ``setup``), the propagators
(W3C ``traceparent`` by default), the batch processor's schedule (``OTEL_BSP_*``).
Spans go out over OTLP/HTTP protobuf in a background thread of the SDK.

When it is off, every helper here returns at its first line (a module global is
False) without touching the SDK, which is not even imported: the hot path pays a
function call per hook. bench/ measures it (BENCHMARKS.md, "Tracing").

The SDK is set up on first use in each process, so KServe's worker processes (which
inherit the environment, not the parent's objects) each export on their own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from runtime.accesslog import INFERENCE_ROUTE
from runtime.grpc import ModelInferInterceptor

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
ENABLED = any(os.environ.get(name) for name in ENDPOINT_VARS) and \
    os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"
INSTRUMENTATION = "kserve-text-classifier"

_tracer = None
_tracer_pid: int | None = None
_NOOP = contextlib.nullcontext()


def setup(service_name: str) -> None:
    """Name this process's service in its spans (``OTEL_SERVICE_NAME`` wins when set); call in ``__main__``."""
    if ENABLED:
        os.environ.setdefault("OTEL_SERVICE_NAME", service_name)  # inherited by KServe's worker processes


def _get_tracer():
    global _tracer, _tracer_pid
    if _tracer is None or _tracer_pid != os.getpid():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create())  # sampler from OTEL_TRACES_SAMPLER[_ARG]
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _tracer, _tracer_pid = provider.get_tracer(INSTRUMENTATION), os.getpid()
    return _tracer


def server_span(name: str, carrier: Mapping[str, str], attributes: Mapping | None = None):
    """The span of one incoming request, child of the caller's ``traceparent`` when it sent one; made current."""
    if not ENABLED:
        return _NOOP
    from opentelemetry import propagate, trace

    return _get_tracer().start_as_current_span(
        name, context=propagate.extract(carrier), kind=trace.SpanKind.SERVER, attributes=attributes,
    )


def span(name: str, attributes: Mapping | None = None, client: bool = False):
    """A child span of the current one, made current for its ``with`` block (the span object, or None when off)."""
    if not ENABLED:
        return _NOOP
    from opentelemetry import trace

    kind = trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL
    return _get_tracer().start_as_current_span(name, kind=kind, attributes=attributes)


def inject(headers: dict) -> dict:
    """``headers`` plus the current span's ``traceparent`` (and ``tracestate``), for a call to the predictor."""
    if ENABLED:
        from opentelemetry import propagate

        propagate.inject(headers)
    return headers


def current_context():
    """The current trace context, to parent spans recorded later elsewhere (None when off)."""
    if not ENABLED:
        return None
    from opentelemetry import context

    return context.get_current()


def record(name: str, parent, start_ns: int, end_ns: int, attributes: Mapping | None = None) -> None:
    """A finished span with given times (``time.time_ns()``) under ``parent`` (a ``current_context()``)."""
    if parent is None:
        return
    _get_tracer().start_span(name, context=parent, start_time=start_ns, attributes=attributes).end(end_time=end_ns)


def set_attributes(target, attributes: Mapping) -> None:
    """Attributes on a span from ``span()`` (a no-op on the None it gives when tracing is off)."""
    if target is not None:
        target.set_attributes(attributes)



class TraceRequests:
    """ASGI middleware (installed only when tracing is on): a server span per inference request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not INFERENCE_ROUTE.match(scope["path"]):
            return await self.app(scope, receive, send)
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
        with server_span(f"{scope['method']} {scope['path']}", carrier, attributes) as current:

            async def send_noting_status(message):
                if message["type"] == "http.response.start":
                    current.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        from opentelemetry.trace import StatusCode

                        current.set_status(StatusCode.ERROR)
                await send(message)

            await self.app(scope, receive, send_noting_status)


class GrpcTrace(ModelInferInterceptor):
    """The gRPC twin of TraceRequests (installed only when tracing is on)."""

    def wrap(self, infer, metadata: dict):
        async def traced(request, context):
            with server_span("ModelInfer", metadata, {"rpc.system": "grpc", "rpc.method": "ModelInfer"}):
                return await infer(request, context)

        return traced
