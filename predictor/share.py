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
"""

from __future__ import annotations

import asyncio

from contract.errors import ErrorType, ServiceError
from contract.schema import CLIENT_HEADER, CLIENT_HEADER_MAX
from runtime.accesslog import INFERENCE_ROUTE
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


class ClientShare:
    def __init__(self, app, hold_s: float = HOLD_S, max_held: int = MAX_HELD):
        self.app = app
        self.hold_s = hold_s
        self.max_held = max_held
        self.held = 0

    async def __call__(self, scope, receive, send):
        route = INFERENCE_ROUTE.match(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        client = dict(scope["headers"]).get(CLIENT)
        client = client.decode("latin-1")[:CLIENT_HEADER_MAX] if client else None  # as predictor/model.py reads it
        batcher = _batcher(scope, route["model"]) if client else None
        if batcher is not None and batcher.over_share(client):
            if self.held < self.max_held:
                self.held += 1
                try:
                    await asyncio.sleep(self.hold_s)
                finally:
                    self.held -= 1
            return await send_error(scope, receive, send, ServiceError(
                ErrorType.OVERLOADED,
                f"This client's texts already fill its share of the queue ({batcher.client_share} texts, half "
                "the queue); retry with backoff."), headers={"retry-after": RETRY_AFTER[1].decode()})

        async def send_with_retry_after(message):
            if message["type"] == "http.response.start" and message.get("status") == 429 and not any(
                    name.lower() == RETRY_AFTER[0] for name, _ in message.get("headers", ())):
                message = {**message, "headers": [*message.get("headers", ()), RETRY_AFTER]}
            await send(message)

        return await self.app(scope, receive, send_with_retry_after)
