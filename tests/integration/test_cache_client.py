"""transformer/cache.py's own MGET (TextCache._read) against a real redis-server: what redis-py's
``execute_command`` did for it, it still does."""

import asyncio

import numpy as np
import pytest

from harness.processes import RedisProcess
from transformer.cache import TextCache
from transformer.metrics import CACHE_ERRORS


def errors(model: str) -> float:
    return CACHE_ERRORS.labels(model, "get")._value.get()


@pytest.fixture
def server(tmp_path):
    process = RedisProcess(tmp_path / "redis.log").start()
    yield process
    process.stop()


def test_mget_answers_values_in_key_order_and_misses_as_none(server):
    async def scenario():
        cache = TextCache(server.url, "client-order", ttl_s=60, timeout_s=2.0, failure_threshold=3, reset_after_s=1)
        rows = {"a": np.array([0.25, 0.75], np.float32), "c": np.array([1.0, 0.0], np.float32)}
        await cache.set_many(rows)
        try:
            return await cache.get_raw_many(["c", "b", "a", "c"])
        finally:
            await cache.close()

    assert asyncio.run(scenario()) == [rows_bytes(1.0, 0.0), None, rows_bytes(0.25, 0.75), rows_bytes(1.0, 0.0)]


def rows_bytes(*values: float) -> bytes:
    return np.array(values, np.float32).tobytes()


def test_a_connection_redis_closed_is_reconnected_without_an_error(server):
    # redis-py's retry wrapper reconnected a pooled connection that Redis closed (a restart, an idle
    # timeout); the direct MGET sends once more on a new connection instead of failing open.
    async def scenario():
        cache = TextCache(server.url, "client-restart", ttl_s=60, timeout_s=2.0, failure_threshold=3,
                          reset_after_s=1)
        try:
            await cache.set_many({"k": rows_bytes(0.5, 0.5)})
            assert await cache.get_raw_many(["k"]) == [rows_bytes(0.5, 0.5)]  # a pooled connection now
            await cache._redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no")
            before = errors("client-restart")
            found = await cache.get_raw_many(["k"])
            return found, errors("client-restart") - before
        finally:
            await cache.close()

    found, new_errors = asyncio.run(scenario())
    assert found == [rows_bytes(0.5, 0.5)] and new_errors == 0


def test_redis_down_is_a_miss_and_a_counted_error(tmp_path):
    process = RedisProcess(tmp_path / "redis.log").start()
    url = process.url
    process.stop()

    async def scenario():
        cache = TextCache(url, "client-down", ttl_s=60, timeout_s=0.5, failure_threshold=3, reset_after_s=1)
        try:
            return await cache.get_raw_many(["x", "y"])
        finally:
            await cache.close()

    before = errors("client-down")
    assert asyncio.run(scenario()) == [None, None]
    assert errors("client-down") == before + 1
