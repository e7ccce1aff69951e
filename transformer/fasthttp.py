"""Full cache hits answered in uvicorn's HTTP protocol, below ASGI: one task, one socket write.

On a hit answered by transformer/fastpath.py's ASGI middleware, most of the CPU left was
not the answer's: uvicorn's request cycle and its ``receive``/``send``, and the layers
above the fast path (Starlette's error middleware, FastAPI's telemetry and body-limit
layers, our access log, body limit and in-flight guard), each an ``await`` and a wrapped
``send``; and the status line and headers went out in one ``transport.write``, the body
in another (BENCHMARKS.md, "Hit path, third pass").

``protocol_class(base)`` subclasses uvicorn's httptools protocol (``base``: the one of
runtime/slowclients.py, whose read deadline and header cap hold as before). When uvicorn
would start the ASGI task of a request (``HttpToolsProtocol._start_asgi_task``, uvicorn
0.54), and the request is one the fast path may take (``FastPath.model_for``/``plain``,
a body of at most ``MAX_BODY`` bytes, HTTP/1.1, no ``Expect: 100-continue``), and the
app's layers above the fast path are exactly the ones this module does the work of,
it waits for the body (uvicorn's own ``on_body`` fills the cycle) and then does, in one
task, what those layers do for such a request:

- the access log (runtime/rest.py ``AccessLog``): the request id, the client's if valid,
  else a new one; ``x-total-time`` and ``x-request-id`` last among the headers; the
  request counters and the log line (runtime/accesslog.py ``record``);
- the in-flight guard (runtime/guard.py): the request and its bytes are counted while it
  is answered; past either cap, or a body with too many JSON values, it is handed on (the
  guard answers);
- the body limit (runtime/rest.py ``BodySizeLimit``): only declared lengths within it come here;
- the fast path itself (``FastPath._answer``: parse, lookup, metrics, the body).

The answer is written as uvicorn's ``RequestResponseCycle.send`` writes it (its default
headers first), in one ``transport.write``, and the cycle is completed as ``send`` does,
so keep-alive, pipelining and graceful shutdown work as before. Anything else (not a
full hit, an error of any kind, a client that left before its body was in) is handed on:
the cycle, with its body, goes to uvicorn's ASGI task as if it had just arrived, marked
so that the fast path middleware does not try it again (``HANDED_ON``), with the time it
arrived (``STARTED``) and the lookup already made (``fastpath.prefetched``: the task
inherits this task's context). With any other layer in the app (tracing, the rate limit,
KServe's ``--access_log_format``, uvicorn's proxy headers) nothing is answered here.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from starlette.middleware.errors import ServerErrorMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from contract import timings
from runtime import slowclients
from runtime.accesslog import new_request_id, record, valid_request_id
from runtime.guard import RequestGuard
from runtime.rest import REQUEST_ID, STARTED, TOTAL_TIME, AccessLog, BodySizeLimit
from transformer.fastpath import HANDED_ON, FastPath, Pass

logger = logging.getLogger(__name__)

MAX_BODY = 65_536  # uvicorn's HIGH_WATER_LIMIT: a body this small never pauses reading (httptools_impl.on_body)
_told = False  # the log line saying so, once per process
INERT = (ServerErrorMiddleware, ExceptionTelemetryMiddleware, AppBodyLimitMiddleware)  # see _layers


class Layers:
    """The app's layers whose work a request answered here does: found once, from the built app."""

    def __init__(self, app: FastAPI, access_log: AccessLog, guard: RequestGuard, fast_path: FastPath,
                 max_body_bytes: int):
        self.app, self.access_log, self.guard, self.fast_path = app, access_log, guard, fast_path
        self.max_body = min(MAX_BODY, max_body_bytes)
        # FastAPI's own OpenTelemetry layer (FastAPI.__call__ asks NativeTelemetry.enabled() per request:
        # is a global tracer, meter or logger provider set?). Asked once per connection here: a provider
        # is set at start-up (runtime/tracing.py, whose own layer then keeps hits in ASGI anyway).
        telemetry = getattr(app, "_native_telemetry", None)
        self.telemetry_on = telemetry is not None and telemetry.enabled()


def _layers(app) -> Layers | None | bool:
    """The app's ``Layers`` if above the fast path it has exactly ours and inert ones; False if it has
    others (never answered here); None while the app has not been built (its first request builds it)."""
    if not isinstance(app, FastAPI) or app.root_path or getattr(app, "max_body_size", None) is not None:
        return False  # uvicorn's wrappers (proxy headers, trace logging) or FastAPI's own limit: not ours to do
    layer, found = app.middleware_stack, {}
    if layer is None:
        return None
    # Starlette's error middleware answers exceptions (none reach it from here: errors are handed on),
    # FastAPI's telemetry layer observes exceptions, its body limit is a no-op without max_body_size
    while not isinstance(layer, FastPath):
        if type(layer) in (AccessLog, BodySizeLimit, RequestGuard):
            found[type(layer)] = layer
        elif not isinstance(layer, INERT):
            logger.info("cache hits go through ASGI: %s is among the layers", type(layer).__name__)
            return False
        layer = getattr(layer, "app", None)
        if layer is None:
            return False
    if len(found) != 3:
        return False
    global _told
    if not _told:
        logger.info("full cache hits are answered in uvicorn's HTTP protocol, below ASGI")
        _told = True
    return Layers(app, found[AccessLog], found[RequestGuard], layer, found[BodySizeLimit].max_bytes)


def protocol_class(base: type) -> type:
    """``base`` answering full cache hits itself, when it is runtime/slowclients.py's httptools protocol (this
    module's subclass of it, defined at module level so that ``--workers`` can pickle uvicorn's config);
    else (h11: no per-message callbacks to hook) ``base``, and ASGI answers."""
    return FastHitProtocol if _BASE is not None and base is _BASE else base


_BASE = slowclients.HttpToolsReadDeadline
if _BASE is None:  # no httptools: uvicorn's auto picks h11
    FastHitProtocol = None
else:
    class FastHitProtocol(_BASE):
        _layers: Layers | None | bool = None  # per connection, from the app (see _layers)
        _waiting = None  # (cycle, app, model, is V2, headers, started) of a request whose body is still arriving

        def _start_asgi_task(self, cycle, app) -> None:
            taken = self._takes(cycle, app)
            if taken is None:
                return super()._start_asgi_task(cycle, app)
            if cycle.more_body:
                # Its body is still arriving: it holds a place in the in-flight guard meanwhile, as it would
                # inside ASGI (a client that never finishes its body must count against MAX_INFLIGHT:
                # tests/integration/test_hostile_costs.py); past the cap ASGI's guard answers it at once.
                guard = self._layers.guard
                if not guard.has_room():
                    return super()._start_asgi_task(cycle, app)
                guard.inflight += 1
                self._waiting = (cycle, app, *taken)  # started by on_message_complete
            else:  # a pipelined request, its body already in
                self._start_fast(cycle, app, *taken)

        def _takes(self, cycle, app):
            """(model, is V2, headers) when this request is one to try here, else None."""
            layers = self._layers
            if not layers:
                if layers is False:
                    return None
                layers = self._layers = _layers(self.app)
                if not layers:
                    return None
            scope = cycle.scope
            if app is not self.app or cycle.waiting_for_100_continue or scope["http_version"] != "1.1":
                return None
            found = layers.fast_path.model_for(scope)
            if found is None:
                return None
            headers = dict(scope["headers"])
            if not layers.fast_path.plain(headers, layers.max_body):
                return None
            if layers.telemetry_on:
                return None
            return (*found, headers, time.perf_counter())  # the access log's clock starts here, as ASGI's would

        def on_message_complete(self) -> None:
            super().on_message_complete()
            waiting = self._waiting
            if waiting is not None and waiting[0] is self.cycle:
                self._waiting = None
                self._layers.guard.inflight -= 1  # its place while the body arrived; _answer counts it again
                if not self.cycle.more_body:
                    self._start_fast(*waiting)

        def connection_lost(self, exc) -> None:
            waiting, self._waiting = self._waiting, None
            super().connection_lost(exc)
            if waiting is not None:  # the client left mid-body: the ASGI layers see it as they would have
                self._layers.guard.inflight -= 1
                super()._start_asgi_task(waiting[0], waiting[1])

        def _start_fast(self, cycle, app, model, v2: bool, headers: dict, started: float) -> None:
            task = self.loop.create_task(self._answer(cycle, app, model, v2, headers, started))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

        def _hand_on(self, cycle, app, started: float) -> None:
            """Run the request through the ASGI app, as uvicorn would have: the body is in the cycle."""
            cycle.scope[HANDED_ON] = True
            cycle.scope[STARTED] = started
            super()._start_asgi_task(cycle, app)  # from this task: the new one inherits its context

        async def _answer(self, cycle, app, model, v2: bool, headers: dict, started: float) -> None:
            layers, scope = self._layers, cycle.scope
            body = bytes(cycle.body)
            guard = layers.guard
            if not guard.admits(body):
                return self._hand_on(cycle, app, started)  # the guard answers these
            request_id = valid_request_id(headers.get(REQUEST_ID, b"").decode("latin-1")) or new_request_id()
            headers[REQUEST_ID] = request_id.encode()  # what the fast path reads, as the access log leaves it
            guard.inflight += 1
            guard.inflight_bytes += len(body)
            try:
                start, answer = await layers.fast_path._answer(model, v2, body, headers)
            except Pass:
                return self._hand_on(cycle, app, started)
            except Exception:  # a fault here must not cost the client its answer: the full path gives it
                logger.exception("answering a cache hit below ASGI failed; handed on")
                return self._hand_on(cycle, app, started)
            finally:
                guard.inflight -= 1
                guard.inflight_bytes -= len(body)
            if cycle.flow.write_paused and not cycle.disconnected:  # as uvicorn's send waits
                await cycle.flow.drain()
            self._write(cycle, start, answer["body"], request_id, started)
            record(model.name, layers.access_log.model_version,  # the name in the path (FastPath.model_for)
                   scope["method"], scope["path"], 200, time.perf_counter() - started, request_id,
                   dict(start["headers"]).get(b"x-cache", b"").decode("latin-1") or None)

        def _write(self, cycle, start: dict, content: bytes, request_id: str, started: float) -> None:
            """Status line, headers and body in one write, as ``RequestResponseCycle.send`` lays them out."""
            if cycle.disconnected:  # uvicorn's send drops an answer to a client that left
                return
            headers = [*cycle.default_headers, *(h for h in start["headers"] if h[0] != REQUEST_ID),
                       (TOTAL_TIME, timings.ms(time.perf_counter() - started).encode()), (REQUEST_ID, request_id.encode())]
            if cycle.access_log and cycle.access_logger.isEnabledFor(logging.INFO):  # its arguments cost, unlogged
                cycle.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(cycle.scope), cycle.scope["method"],
                                         get_path_with_query_string(cycle.scope), cycle.scope["http_version"], 200)
            parts = [STATUS_LINE[200]]
            for name, value in headers:
                parts += (name, b": ", value, b"\r\n")
            if not cycle.keep_alive:
                parts.append(b"connection: close\r\n")
            parts += (b"\r\n", content)
            cycle.response_started = True
            self.transport.write(b"".join(parts))
            cycle.response_complete = True
            cycle.message_event.set()
            if not cycle.keep_alive:
                self.transport.close()
            cycle.on_response()


class FastPathBelowAsgi(FastPath):
    """The fast path's middleware with this layer below it: runtime/kserve/rest_server.py ``configure`` gives
    uvicorn ``wrap_protocol(its protocol)``."""

    wrap_protocol = staticmethod(protocol_class)
