"""Slow gRPC clients cannot hold a connection: gRPC core's bounds (runtime/grpc.py ``server_options``).

A real predictor runs with short bounds: the handshake (``--read_timeout_s``) 2 s, idle 2 s,
age 3 s with a 2 s grace, keepalive 2 s. A raw socket that sends nothing, or the HTTP/2
preface and stalls, is closed at the handshake bound; one that also sends its SETTINGS and
stalls is closed when idle; an RPC whose message never arrives (a real gRPC client that
answers pings) ends by the connection's age and grace. Meanwhile a normal client's RPCs
are answered. With gRPC's defaults each of these connections is held without bound
(the handshake for 2 minutes).
"""

from __future__ import annotations

import socket
import threading
import time

import grpc
import pytest

from harness.processes import ServerProcess, grpc_server_ready

pytestmark = pytest.mark.integration

BOUND_S = 25.0  # the bounds plus any scheduling delay a busy 2-core machine adds; a held connection never ends
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame (length 0, type 4, stream 0)
INFER = "/inference.GRPCInferenceService/ModelInfer"


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("grpc-slow") / "predictor.log"
    started = ServerProcess("predictor", [
        "--model_name", "sentiment", "--model_dir", str(tiny_model_dir), "--backend", "onnx",
        "--read_timeout_s", "2", "--grpc_connection_idle_s", "2", "--grpc_connection_age_s", "3",
        "--grpc_connection_age_grace_s", "2", "--grpc_keepalive_s", "2"], log).start()
    yield started
    started.stop()


def held_for(target: str, first: bytes) -> float:
    """Seconds until the server ends a raw connection that sent ``first`` and then nothing; BOUND_S if never."""
    host, port = target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(0.5)
    started = time.monotonic()
    try:
        if first:
            sock.sendall(first)
        while time.monotonic() - started < BOUND_S:
            try:
                if not sock.recv(65536):  # the server's SETTINGS and GOAWAY come first: read on to the end
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        return time.monotonic() - started
    finally:
        sock.close()


def normal_client_answers(target: str, stop: threading.Event, answers: list) -> None:
    """A well-behaved client: ServerReady on a fresh channel every 0.5 s until ``stop``."""
    while not stop.is_set():
        answers.append(grpc_server_ready(target, timeout_s=10))
        stop.wait(0.5)


@pytest.mark.parametrize("first", [b"", PREFACE, PREFACE + SETTINGS], ids=["silence", "preface", "settings"])
def test_a_stalled_connection_is_closed_while_others_are_answered(server, first):
    stop, answers = threading.Event(), []
    other = threading.Thread(target=normal_client_answers, args=(server.grpc_target, stop, answers))
    other.start()
    try:
        held = held_for(server.grpc_target, first)
    finally:
        stop.set()
        other.join()
    assert held < BOUND_S, f"a connection that sent {first!r} was still open after {BOUND_S} s"
    assert held >= 1.0  # closed by the bound, not at once
    assert answers and all(answers), answers


def test_an_rpc_whose_message_never_arrives_is_ended_by_the_connection_age(server):
    never = threading.Event()

    def no_message():
        never.wait(BOUND_S + 5)  # the request stream's first message never comes
        return iter(())

    def messages():
        yield from no_message()

    with grpc.insecure_channel(server.grpc_target) as channel:
        # ModelInfer's headers, then silence: the server's unary handler waits for the message
        call = channel.stream_unary(INFER, request_serializer=bytes, response_deserializer=bytes)
        started = time.monotonic()
        future = call.future(messages())
        try:
            with pytest.raises(grpc.RpcError) as ended:
                future.result(timeout=BOUND_S)
            held = time.monotonic() - started
        finally:
            never.set()
            future.cancel()
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, ended.value  # the connection closed under it
    assert held < BOUND_S
    assert grpc_server_ready(server.grpc_target, timeout_s=10)  # and the server serves on
