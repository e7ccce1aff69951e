"""The coalescer: each key is fetched once, however many requests want it at once."""

import asyncio

import numpy as np
import pytest

from transformer.coalesce import Coalescer


async def test_concurrent_requests_share_one_fetch_per_key():
    calls = []

    async def fetch(keys):
        calls.append(list(keys))
        await asyncio.sleep(0.05)
        return {key: np.array([len(key)], dtype=np.float32) for key in keys}

    coalescer = Coalescer()
    results = await asyncio.gather(
        coalescer.compute(["a", "bb"], fetch), coalescer.compute(["bb", "ccc"], fetch), coalescer.compute(["a"], fetch)
    )
    assert sorted(k for call in calls for k in call) == ["a", "bb", "ccc"]  # each key fetched exactly once
    assert results[1][0]["bb"][0] == 2 and results[1][1] == 1  # "bb" came from the first request's fetch
    assert results[2][1] == 1
    assert len(coalescer) == 0  # nothing left in flight


async def test_a_failed_fetch_fails_every_waiter_and_is_not_cached():
    async def failing(keys):
        await asyncio.sleep(0.01)
        raise RuntimeError("predictor down")

    coalescer = Coalescer()
    outcomes = await asyncio.gather(coalescer.compute(["k"], failing), coalescer.compute(["k"], failing),
                                    return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)

    async def working(keys):
        return {key: np.zeros(1, dtype=np.float32) for key in keys}

    results, _ = await coalescer.compute(["k"], working)  # the next request tries again
    assert results["k"].shape == (1,)


async def test_no_keys_no_fetch():
    async def never(keys):
        pytest.fail("fetched nothing")

    assert await Coalescer().compute([], never) == ({}, 0)
