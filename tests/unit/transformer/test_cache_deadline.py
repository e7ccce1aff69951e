"""transformer/cache.py ``_guarded``'s deadline: what ``asyncio.timeout`` did, without it."""

import asyncio

import pytest

from transformer.cache import TextCache
from transformer.metrics import CACHE_ERRORS


def _cache(timeout_s: float = 0.05) -> TextCache:
    return TextCache("redis://127.0.0.1:1/0", "deadline-test", 60, timeout_s, failure_threshold=100, reset_after_s=60)


def _errors() -> float:
    return CACHE_ERRORS.labels("deadline-test", "get")._value.get()


def test_a_call_past_the_deadline_is_a_counted_failure_and_none():
    cache, before = _cache(), _errors()

    async def slow():
        await asyncio.sleep(30)
        return "late"

    async def run():
        result = await cache._guarded("get", slow)
        await asyncio.sleep(0)  # the task is not left cancelled
        return result

    assert asyncio.run(run()) is None
    assert _errors() == before + 1
    assert cache.breaker._failures == 1


def test_an_answer_in_time_leaves_no_timer_behind():
    cache, before = _cache(0.02), _errors()

    async def quick():
        return "value"

    async def run():
        result = await cache._guarded("get", quick)
        await asyncio.sleep(0.2)  # past the deadline: a timer left behind would cancel this sleep
        return result

    assert asyncio.run(run()) == "value"
    assert _errors() == before


def test_a_cancellation_from_outside_is_not_taken_for_the_deadline():
    cache, before = _cache(30), _errors()

    async def run():
        started = asyncio.Event()

        async def slow():
            started.set()
            await asyncio.sleep(60)

        task = asyncio.create_task(cache._guarded("get", slow))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert _errors() == before
