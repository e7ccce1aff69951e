"""runtime/slowclients.py on both of uvicorn's HTTP protocols (httptools and h11), with a trivial ASGI app
in a uvicorn server of this process; tests/integration/test_slow_clients.py sends the same to the services."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
import uvicorn

from harness.processes import free_port
from runtime import slowclients

TIMEOUT_S = 0.5
PROTOCOLS = [p for p in (slowclients.HttpToolsReadDeadline, slowclients.H11ReadDeadline) if p is not None]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = scope["path"] != "/early"  # /early answers before it reads the body, as a 413 or a 429 does
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=PROTOCOLS, ids=lambda p: p.__name__)
def port(request):
    config = uvicorn.Config(app, port=free_port(), http=request.param, log_config=None, lifespan="off",
                            timeout_keep_alive=30)
    config.read_timeout_s = TIMEOUT_S
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield config.port
    server.should_exit = True
    thread.join(10)


def closed_after(port: int, first: bytes, trickle: bytes = b"") -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.1)
        started = time.monotonic()
        sock.sendall(first)
        while time.monotonic() - started < 10:
            try:
                if trickle:
                    sock.send(trickle[:1])
                if sock.recv(1024) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        return time.monotonic() - started


GET = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest.mark.parametrize("first, trickle", [(b"GET / HTTP/1.1\r\nhost: x\r\n", b"x"),
                                            (b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 999\r\n\r\n", b"a"),
                                            (b"", b"")], ids=["headers", "body", "silence"])
def test_a_request_that_does_not_arrive_in_time_is_disconnected(port, first, trickle):
    assert TIMEOUT_S * 0.8 < closed_after(port, first, trickle) < 10


def answer_of(sock: socket.socket) -> bytes:
    answer = b""
    while not answer.endswith(b"ok"):
        chunk = sock.recv(1024)
        assert chunk, f"closed after {answer!r}"
        answer += chunk
    return answer


def test_a_kept_alive_connection_serves_after_idling_past_the_deadline(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(GET)
            assert answer_of(sock).startswith(b"HTTP/1.1 200")
            time.sleep(TIMEOUT_S * 2)


def test_a_request_answered_before_its_body_arrived_does_not_doom_the_next(port):
    """An early answer (e.g. a 413 before the body is read) leaves the rest of the body to arrive; once it
    has, the connection serves the next request as usual, even past the first one's deadline."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /early HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nab")
        assert answer_of(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"cd")  # the rest of the body
        time.sleep(TIMEOUT_S * 2)
        sock.sendall(GET)
        assert answer_of(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.skipif(slowclients.HttpToolsReadDeadline is None, reason="httptools is not installed")
def test_httptools_headers_past_64_kib_are_431():
    config = uvicorn.Config(app, port=free_port(), http=slowclients.HttpToolsReadDeadline, log_config=None,
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        with socket.create_connection(("127.0.0.1", config.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 70_000 + b"\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 431") and b'"error_type":"headers_too_large"' in answer
    finally:
        server.should_exit = True
        thread.join(10)
