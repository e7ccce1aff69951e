"""Slow clients (slow-loris) cannot hold a connection: runtime/slowclients.py against real servers.

Each service runs with ``--read_timeout_s 2``. A raw socket that sends part of a request
line and headers, or whole headers and then a body, a byte at a time, or nothing at all,
is disconnected soon after the deadline, while a normal client is answered meanwhile; a
request's headers over 64 KiB get a 431 ``headers_too_large``; a kept-alive connection
idle for longer than the deadline still serves its next request (the idle time between
requests is ``timeout_keep_alive``'s, not this deadline's).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.integration.servers import CLOSE, HTTP, ServerProcess, transformer_for

pytestmark = pytest.mark.integration

READ_TIMEOUT_S = 2.0
BOUND_S = 20.0  # the deadline plus any scheduling delay a busy 2-core machine adds; a held connection never ends
BODY = json.dumps({"instances": ["a normal client"]}).encode()
HEAD = b"POST /v1/models/sentiment:predict HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"


@pytest.fixture(scope="module", params=["predictor", "transformer"])
def server(request, predictor, redis, tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("slow") / f"{request.param}.log"
    flags = ["--read_timeout_s", str(READ_TIMEOUT_S)]
    if request.param == "transformer":
        started = transformer_for(predictor, redis, log, *flags).start()
    else:
        started = ServerProcess("predictor", ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir),
                                              "--backend", "onnx", *flags], log).start()
    yield started
    started.stop()


def held_for(port: int, first: bytes, trickle: bytes) -> tuple[float, bytes]:
    """Seconds until the server ends a connection that sent ``first`` and then ``trickle`` a byte per 0.2 s
    (over and over), and what it sent back; BOUND_S if it never does."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(0.2)
    started, answered = time.monotonic(), b""
    try:
        sock.sendall(first)
        i = 0
        while time.monotonic() - started < BOUND_S:
            if trickle:
                try:
                    sock.send(trickle[i % len(trickle):i % len(trickle) + 1])
                except OSError:
                    break
                i += 1
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            answered += data
        return time.monotonic() - started, answered
    finally:
        sock.close()


def normal_client_answers(url: str) -> list[int]:
    return [HTTP.post(url + "/v1/models/sentiment:predict", content=BODY, headers=CLOSE, timeout=30).status_code
            for _ in range(3)]


@pytest.mark.parametrize("attack", ["headers", "body", "silence"])
def test_a_slow_request_is_disconnected_while_others_are_answered(server, attack):
    first, trickle = {
        "headers": (HEAD, b"x-slow: " + b"a" * 1000),  # never ends its headers
        "body": (HEAD + b"content-length: %d\r\n\r\n" % (len(BODY) + 10_000), b" " * 1000),  # nor its body
        "silence": (b"", b""),  # connects and sends nothing
    }[attack]
    outcome = {}
    attacker = threading.Thread(target=lambda: outcome.update(held=held_for(server.http_port, first, trickle)))
    attacker.start()
    time.sleep(0.3)
    assert normal_client_answers(server.url) == [200] * 3  # while the attacker is connected
    attacker.join()
    held, answered = outcome["held"]
    assert READ_TIMEOUT_S - 0.5 <= held < BOUND_S, held
    assert b"200 OK" not in answered


def test_headers_over_64_kib_get_431(server):
    held, answered = held_for(server.http_port, HEAD + b"x-big: " + b"a" * 70_000 + b"\r\n", b"")
    assert held < BOUND_S
    status, _, body = answered.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431") and json.loads(body)["error_type"] == "headers_too_large"
    assert normal_client_answers(server.url) == [200] * 3


def test_a_kept_alive_connection_idle_past_the_deadline_still_serves(server):
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as sock:
        request = HEAD + b"content-length: %d\r\n\r\n" % len(BODY) + BODY
        for _ in range(2):
            sock.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            time.sleep(READ_TIMEOUT_S + 1)  # idle longer than a request may take to arrive
