"""A named client over its share of the queue is refused before its body is read, and slowly.

The batcher lets one named client (``x-tc-client``, contract/schema.py) hold half the
queue; past it the client's requests get 429 ``overloaded`` (predictor/batcher.py
``check_room``). Refused after the body is read and parsed, a client that retries at
once turned its refusals into ~460 answers a second, and that CPU slowed every other
client's texts (issue 26, item 3; BENCHMARKS.md). So this ASGI layer, outside the body
limit and the request guard (runtime/kserve/rest_server.py ``_add_middlewares``):

- asks the batcher, from the header alone, whether the client's next request would
  pass its share (``DynamicBatcher.over_share``: the room its last request asked for);
- if so, holds the 429 for ``HOLD_S`` on an ``asyncio.sleep`` (no CPU, no body read,
  no slot of the request guard) and answers it with ``Retry-After``: a client that
  retries at once sends at most one request a ``HOLD_S`` per connection;
- holds at most ``MAX_HELD`` refusals at once (each is a coroutine and a connection's
  buffers); past that, refuses at once. ``HOLD_S`` is far under any request deadline.

Every 429 ``overloaded`` the model answers gets ``Retry-After`` here too.

``GrpcClientShare`` does the same for V2 gRPC ``ModelInfer`` (the transformer names the
client in the ``x-tc-client`` metadata): an interceptor runs when the call's metadata has
arrived and before its message is received, and the refusal is a stream-unary handler
that never asks for the message (runtime/grpc.py ``refusal``), held the same way and
counted against the same cap, with ``retry-after`` trailing metadata.
"""

from __future__ import annotations

import asyncio

import grpc

from contract.errors import ErrorType, ServiceError
from contract.schema import CLIENT_HEADER, client_of
from runtime.accesslog import INFERENCE_ROUTE
from runtime.grpc import GRPC_INFER, refusal
from runtime.rest import send_error

HOLD_S = 0.5
MAX_HELD = 256
RETRY_AFTER = (b"retry-after", b"1")
CLIENT = CLIENT_HEADER.encode("latin-1")


def _batcher(scope, model_name: str):
    """The served model's batcher, or None (another service, or a model not served here)."""
    # Starlette.__call__ (starlette/applications.py) sets scope["app"] before the middleware stack runs;
    # model_of is set by runtime/kserve/rest_server.py.
    model_of = getattr(getattr(scope.get("app"), "state", None), "model_of", None)
    model = model_of(model_name) if model_of is not None else None
    return getattr(model, "batcher", None)


class Hold:
    """Refusals held on a timer, at most ``max_held`` at once (the REST layer and the gRPC interceptor
    of one process share one): past the cap, a refusal is answered at once."""

    def __init__(self, hold_s: float = HOLD_S, max_held: int = MAX_HELD):
        self.hold_s = hold_s
        self.max_held = max_held
        self.held = 0

    async def __call__(self) -> None:
        if self.held >= self.max_held:
            return
        self.held += 1
        try:
            await asyncio.sleep(self.hold_s)
        finally:
            self.held -= 1


HOLDS = Hold()  # the process's one


def _over_share_error(batcher) -> ServiceError:
    return ServiceError(
        ErrorType.OVERLOADED,
        f"This client's texts already fill its share of the queue ({batcher.client_share} texts, half "
        "the queue); retry with backoff.")


class ClientShare:
    def __init__(self, app, hold: Hold = HOLDS):
        self.app = app
        self.hold = hold

    async def __call__(self, scope, receive, send):
        route = INFERENCE_ROUTE.match(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        client = client_of(dict(scope["headers"]).get(CLIENT))
        batcher = _batcher(scope, route["model"]) if client else None
        if batcher is not None and batcher.over_share(client):
            await self.hold()
            return await send_error(scope, receive, send, _over_share_error(batcher),
                                    headers={"retry-after": RETRY_AFTER[1].decode()})

        async def send_with_retry_after(message):
            if message["type"] == "http.response.start" and message.get("status") == 429 and not any(
                    name.lower() == RETRY_AFTER[0] for name, _ in message.get("headers", ())):
                message = {**message, "headers": [*message.get("headers", ()), RETRY_AFTER]}
            await send(message)

        return await self.app(scope, receive, send_with_retry_after)


class GrpcClientShare(grpc.aio.ServerInterceptor):
    """The same refusal on gRPC ``ModelInfer``, before the message is received: the predictor serves one
    model, whose batcher judges the client named in the call's metadata."""

    def __init__(self, model, hold: Hold = HOLDS):
        self.model = model
        self.hold = hold

    async def intercept_service(self, continuation, details):
        if details.method == GRPC_INFER:
            client = client_of(dict(details.invocation_metadata or ()).get(CLIENT_HEADER))
            batcher = getattr(self.model, "batcher", None) if client else None
            if batcher is not None and batcher.over_share(client):
                return refusal(_over_share_error(batcher), RETRY_AFTER[1].decode(), self.hold)
        return await continuation(details)
