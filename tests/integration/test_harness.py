"""The process harness itself (harness/processes.py): ports no other process can take, a lost port survived."""

import socket

import pytest
import redis as redis_client

from harness.processes import _ephemeral_range, free_port, grpc_server_ready
from tests.integration.servers import RedisProcess

pytestmark = pytest.mark.integration


def test_free_ports_are_distinct_and_below_the_ephemeral_range():
    low, _ = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50 and all(port < low for port in ports)


def test_a_redis_whose_port_was_taken_meanwhile_starts_on_another(tmp_path):
    redis = RedisProcess(tmp_path / "redis.log")
    taken = redis.port
    with socket.socket() as squatter:  # another process binds the port between the pick and the start
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        redis.start()
        try:
            assert redis.port != taken and redis_client.Redis.from_url(redis.url).ping()
        finally:
            redis.stop()


def test_grpc_readiness_is_false_where_nothing_listens():
    assert grpc_server_ready(f"127.0.0.1:{free_port()}", timeout_s=0.5) is False
