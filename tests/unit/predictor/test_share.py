"""predictor/share.py: an over-share client is refused before its body is read, held, with Retry-After."""

import asyncio
import json
from types import SimpleNamespace

import pytest

from contract.errors import ErrorType, ServiceError
from predictor.share import ClientShare, GrpcClientShare, Hold
from runtime.grpc import GRPC_INFER


class Batcher:
    client_share = 5000

    def __init__(self, over: set[str]):
        self.over = over

    def over_share(self, client: str) -> bool:
        return client in self.over


def scope_for(client: str | None, batcher: Batcher) -> dict:
    model = SimpleNamespace(batcher=batcher)
    app = SimpleNamespace(state=SimpleNamespace(model_of=lambda name: model if name == "sentiment" else None))
    headers = [(b"content-type", b"application/json")] + ([(b"x-tc-client", client.encode())] if client else [])
    return {"type": "http", "method": "POST", "path": "/v1/models/sentiment:explain", "headers": headers,
            "app": app, "query_string": b""}


async def call(middleware: ClientShare, scope: dict) -> tuple[int, dict, dict | None, bool]:
    sent, read = [], False

    async def receive():
        nonlocal read
        read = True
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    await middleware(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body) if body else None, read


def inner(status: int):
    calls = []

    async def app(scope, receive, send):
        calls.append(scope)
        await receive()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app, calls


async def test_an_over_share_client_is_held_then_refused_without_its_body_being_read():
    app, calls = inner(200)
    middleware = ClientShare(app, Hold(hold_s=0.05))
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, headers, body, read = await call(middleware, scope_for("storm", Batcher({"storm"})))
    assert status == 429 and body["error_type"] == "overloaded"
    assert headers[b"retry-after"] == b"1"
    assert not calls and not read  # neither the model nor the body was touched
    assert loop.time() - started >= 0.04  # held, not answered at once
    assert middleware.hold.held == 0


async def test_other_clients_pass_and_a_429_from_the_model_gains_retry_after():
    app, calls = inner(200)
    status, _, _, read = await call(ClientShare(app, Hold(hold_s=5)), scope_for("lone", Batcher({"storm"})))
    assert status == 200 and len(calls) == 1 and read
    status, _, _, _ = await call(ClientShare(app, Hold(hold_s=5)), scope_for(None, Batcher({"storm"})))
    assert status == 200 and len(calls) == 2  # no client named: nothing to judge
    app, _ = inner(429)
    status, headers, _, _ = await call(ClientShare(app), scope_for("lone", Batcher(set())))
    assert status == 429 and headers[b"retry-after"] == b"1"


async def test_held_refusals_are_capped():
    """Past max_held refusals at once, the next is answered at once: memory stays bounded."""
    app, _ = inner(200)
    middleware = ClientShare(app, Hold(hold_s=30, max_held=2))
    batcher = Batcher({"storm"})
    held = [asyncio.ensure_future(call(middleware, scope_for("storm", batcher))) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert middleware.hold.held == 2
    status, _, _, _ = await asyncio.wait_for(call(middleware, scope_for("storm", batcher)), 5)
    assert status == 429 and middleware.hold.held == 2
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)
    assert middleware.hold.held == 0


class Context:
    def __init__(self):
        self.trailing = ()

    def set_trailing_metadata(self, metadata):
        self.trailing = metadata


class Unread:
    """A request iterator that fails the test if the handler asks for the message."""

    def __aiter__(self):
        return self

    async def __anext__(self):
        raise AssertionError("the message was asked for")


async def test_grpc_an_over_share_client_is_held_then_refused_without_its_message_being_received():
    continued = []

    async def continuation(details):
        continued.append(details)
        return "the model's handler"

    def details(client: str | None, method: str = GRPC_INFER):
        return SimpleNamespace(method=method, invocation_metadata=(("x-tc-client", client),) if client else ())

    interceptor = GrpcClientShare(SimpleNamespace(batcher=Batcher({"storm"})), Hold(hold_s=0.05))
    handler = await interceptor.intercept_service(continuation, details("storm"))
    assert not continued and handler.request_streaming and not handler.response_streaming
    context, loop = Context(), asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ServiceError) as refused:
        await handler.stream_unary(Unread(), context)
    assert refused.value.error_type == ErrorType.OVERLOADED
    assert dict(context.trailing)["retry-after"] == "1"
    assert loop.time() - started >= 0.04  # held, not answered at once
    # another client, no client, another method: the model's own handler
    for other in (details("lone"), details(None), details("storm", "/inference.GRPCInferenceService/ServerReady")):
        assert await interceptor.intercept_service(continuation, other) == "the model's handler"
    assert len(continued) == 3
