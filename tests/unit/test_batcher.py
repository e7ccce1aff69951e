"""The dynamic batcher with a recording inference function (a unit test: no model, no server)."""

import asyncio
import threading
import time

import numpy as np
import pytest

from contract.errors import ServiceError
from predictor.batcher import DynamicBatcher


class Recorder:
    """Scores each text by its length, records every call, optionally sleeps like a slow model."""

    def __init__(self, delay_s: float = 0.0):
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s

    def __call__(self, texts):
        self.calls.append(list(texts))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        return np.array([[len(t), -len(t)] for t in texts], dtype=np.float32)


def expected(texts):
    return np.array([[len(t), -len(t)] for t in texts], dtype=np.float32)


async def test_concurrent_requests_share_a_batch():
    infer = Recorder(delay_s=0.05)
    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=64, max_delay_s=0.02, max_queue_texts=10_000)
    requests = [[f"text {i}" * (i + 1)] for i in range(10)]
    results = await asyncio.gather(*(batcher.submit(r, timeout_s=5) for r in requests))
    for request, result in zip(requests, results):
        np.testing.assert_array_equal(result, expected(request))
    assert len(infer.calls) < len(requests)
    assert all(name.startswith("inference") for name in infer.threads)  # never the event loop's thread


async def test_batches_never_exceed_max_batch_size_and_keep_order():
    infer = Recorder()
    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=4, max_delay_s=0.001, max_queue_texts=10_000)
    texts = [f"t{i}" * (i % 5 + 1) for i in range(23)]
    result = await batcher.submit(texts, timeout_s=5)
    np.testing.assert_array_equal(result, expected(texts))
    assert max(len(call) for call in infer.calls) <= 4
    assert [t for call in infer.calls for t in call] == texts


async def test_deadline_answers_timeout_and_drops_queued_texts():
    infer = Recorder(delay_s=0.2)
    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=2, max_delay_s=0.0, max_queue_texts=10_000)
    started = time.perf_counter()
    with pytest.raises(ServiceError) as caught:
        await batcher.submit(["a"] * 10, timeout_s=0.05)
    assert caught.value.error_type == "timeout" and caught.value.http_status == 504
    assert time.perf_counter() - started < 0.15  # answered at the deadline, not after the model
    await asyncio.sleep(0.3)
    assert sum(len(call) for call in infer.calls) <= 4  # the rest never reached the model
    assert batcher.queued_texts == 0


async def test_event_loop_stays_responsive_during_inference():
    batcher = DynamicBatcher(Recorder(delay_s=0.3), num_outputs=2, max_delay_s=0.0, max_batch_size=32,
                             max_queue_texts=10_000)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await batcher.submit(["x"], timeout_s=5)
    task.cancel()
    assert ticks >= 10  # the loop kept running while the model "computed" for 0.3 s


async def test_full_queue_answers_overloaded():
    batcher = DynamicBatcher(Recorder(delay_s=0.2), num_outputs=2, max_batch_size=1, max_queue_texts=3,
                             max_delay_s=0.002)
    first = asyncio.create_task(batcher.submit(["a", "b", "c"], timeout_s=5))
    await asyncio.sleep(0)
    with pytest.raises(ServiceError) as caught:
        await batcher.submit(["d"], timeout_s=5)
    assert caught.value.error_type == "overloaded" and caught.value.http_status == 429
    assert (await first).shape == (3, 2)


async def test_model_failure_fails_its_requests_not_the_batcher():
    calls = 0

    def flaky(texts):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return expected(texts)

    batcher = DynamicBatcher(flaky, num_outputs=2, max_delay_s=0.0, max_batch_size=32, max_queue_texts=10_000)
    with pytest.raises(RuntimeError):
        await batcher.submit(["a"], timeout_s=5)
    np.testing.assert_array_equal(await batcher.submit(["bb"], timeout_s=5), expected(["bb"]))


async def test_empty_request_skips_the_model():
    infer = Recorder()
    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=32, max_delay_s=0.002, max_queue_texts=10_000)
    assert (await batcher.submit([], timeout_s=1)).shape == (0, 2)
    assert infer.calls == []
