"""The dynamic batcher with a recording inference function (a unit test: no model, no server)."""

import asyncio
import threading
import time

import numpy as np
import pytest

from contract.errors import ServiceError
from predictor.batcher import BATCH_TOKENS, DynamicBatcher, _Pending, _tokens


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
    infer = Recorder(delay_s=0.5)  # far past the deadline, so a loaded machine's late wake-up cannot blur the two
    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=2, max_delay_s=0.0, max_queue_texts=10_000)
    started = time.perf_counter()
    with pytest.raises(ServiceError) as caught:
        await batcher.submit(["a"] * 10, timeout_s=0.05)
    assert caught.value.error_type == "timeout" and caught.value.http_status == 504
    assert time.perf_counter() - started < 0.3  # answered at the deadline, not after the model
    await asyncio.sleep(0.7)
    assert sum(len(call) for call in infer.calls) <= 4  # the rest never reached the model
    assert batcher.queued_texts == 0


async def test_event_loop_stays_responsive_during_inference():
    batcher = DynamicBatcher(Recorder(delay_s=0.5), num_outputs=2, max_delay_s=0.0, max_batch_size=32,
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
    assert ticks >= 5  # the loop kept running while the model "computed" for 0.5 s (~45 ticks; blocked: 0 or 1)


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


async def test_a_lone_request_does_not_wait_out_the_delay():
    batcher = DynamicBatcher(Recorder(), num_outputs=2, max_batch_size=32, max_delay_s=5.0, max_queue_texts=10_000)
    started = time.perf_counter()
    await batcher.submit(["alone"], timeout_s=10)
    assert time.perf_counter() - started < 2.5  # the model was idle and nobody else was coming: no 5 s wait


async def test_after_a_full_batch_the_next_one_waits_for_company():
    infer = Recorder()
    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=32, max_delay_s=1.5, max_queue_texts=10_000)
    await batcher.submit(["a", "b", "c", "d"], timeout_s=10)  # a batch of 4: four clients are about
    first = asyncio.create_task(batcher.submit(["e"], timeout_s=10))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(batcher.submit(["f"], timeout_s=10))
    await asyncio.gather(first, second)
    assert infer.calls[-1] == ["e", "f"]  # "e" waited (up to 1.5 s) and "f" joined it


class IdsRecorder(Recorder):
    """Scores a row of token ids by its length, like a text."""

    def __call__(self, rows):
        self.calls.append(list(rows))
        return np.array([[len(r), -len(r)] for r in rows], dtype=np.float32)


async def test_a_group_is_never_split_across_batches():
    infer = IdsRecorder()
    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=5, max_delay_s=0.001, max_queue_texts=10_000)
    rows = [[1] * (i + 1) for i in range(11)]
    groups = [3, 6, 9, 11]  # four texts' rows: 3 + 3 + 3 + 2
    result = await batcher.submit(rows, timeout_s=5, groups=groups)
    np.testing.assert_array_equal(result, expected(rows))
    ends, seen = set(groups), 0
    for call in infer.calls:
        seen += len(call)
        assert seen in ends, f"a batch ended inside a group: {[len(c) for c in infer.calls]}"


async def test_a_group_larger_than_the_batch_runs_alone_and_in_one_call():
    infer = IdsRecorder()
    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=4, max_delay_s=0.001, max_queue_texts=10_000)
    rows = [[7] * 3 for _ in range(9)]
    result = await batcher.submit(rows, timeout_s=5, groups=[9])
    np.testing.assert_array_equal(result, expected(rows))
    assert [len(call) for call in infer.calls] == [9]


async def test_grouped_and_plain_requests_share_batches():
    infer = IdsRecorder(delay_s=0.0)
    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=8, max_delay_s=0.05, max_queue_texts=10_000)
    plain, grouped = ["abc", "de"], [[1, 2], [1], [1, 2, 3]]
    a, b = await asyncio.gather(batcher.submit(plain, 5), batcher.submit(grouped, 5, groups=[3]))
    np.testing.assert_array_equal(a, expected(plain))
    np.testing.assert_array_equal(b, expected(grouped))
    assert len(infer.calls) == 1


async def test_a_poisoned_text_fails_only_its_own_request():
    """A batch that fails is rerun request by request: texts that succeed alone are answered."""
    calls = []

    def poisoned(texts):
        calls.append(list(texts))
        if "poison" in texts:
            raise ValueError("the tokenizer cannot take this text")
        return expected(texts)

    batcher = DynamicBatcher(poisoned, num_outputs=2, max_delay_s=0.05, max_batch_size=32, max_queue_texts=10_000)
    batcher._last_batch_texts = 32  # wait for company: the three requests share one batch
    results = await asyncio.gather(batcher.submit(["a", "bb"], timeout_s=5), batcher.submit(["poison"], timeout_s=5),
                                   batcher.submit(["ccc"], timeout_s=5), return_exceptions=True)
    assert calls[0] == ["a", "bb", "poison", "ccc"]  # they did share a batch
    np.testing.assert_array_equal(results[0], expected(["a", "bb"]))
    assert isinstance(results[1], ValueError)
    np.testing.assert_array_equal(results[2], expected(["ccc"]))


async def test_a_lone_text_does_not_wait_behind_a_long_request():
    """Batches take turns across queued requests: a text queued behind 320 others runs in the next batch."""
    infer = Recorder(delay_s=0.01)
    batcher = DynamicBatcher(infer, num_outputs=2, max_delay_s=0.0, max_batch_size=32, max_queue_texts=10_000)
    long = asyncio.ensure_future(batcher.submit([f"long {i}" for i in range(320)], timeout_s=10))
    await asyncio.sleep(0)  # the long request is queued first ...
    lone = await batcher.submit(["lone"], timeout_s=10)  # ... and this one is answered before it
    assert not long.done()
    np.testing.assert_array_equal(lone, expected(["lone"]))
    assert ["lone" in call for call in infer.calls].index(True) <= 1  # the first batch, or the one after it
    np.testing.assert_array_equal(await long, expected([f"long {i}" for i in range(320)]))
    assert all(len(call) <= 32 for call in infer.calls)


async def test_a_lone_text_does_not_wait_behind_groups_larger_than_a_batch():
    """An explanation's rows (one group each text, larger than a batch) take turns with a lone text too."""
    infer = Recorder(delay_s=0.01)
    batcher = DynamicBatcher(infer, num_outputs=2, max_delay_s=0.0, max_batch_size=32, max_queue_texts=10_000)
    rows = [f"row {i}" for i in range(65 * 10)]
    long = asyncio.ensure_future(batcher.submit(rows, timeout_s=10, groups=list(range(65, 651, 65))))
    await asyncio.sleep(0)
    await batcher.submit(["lone"], timeout_s=10)
    assert not long.done()
    assert ["lone" in call for call in infer.calls].index(True) <= 1
    np.testing.assert_array_equal(await long, expected(rows))


async def test_a_lone_client_does_not_wait_behind_another_clients_many_requests():
    """Turns are per client first: 40 queued requests of one client are one turn, not 40, so another
    client's text rides in the next batch even when every batch is full (issue 26, item 3)."""
    infer = Recorder(delay_s=0.01)
    batcher = DynamicBatcher(infer, num_outputs=2, max_delay_s=0.0, max_batch_size=8, max_queue_texts=10_000)
    storm = [asyncio.ensure_future(batcher.submit([f"storm {r} {i}" for i in range(4)], timeout_s=10, client="storm"))
             for r in range(40)]
    await asyncio.sleep(0)  # the storm is queued first ...
    lone = await batcher.submit(["lone"], timeout_s=10, client="lone")  # ... and this one runs next
    assert sum(task.done() for task in storm) < len(storm)
    np.testing.assert_array_equal(lone, expected(["lone"]))
    assert ["lone" in call for call in infer.calls].index(True) <= 1
    for r, task in enumerate(storm):  # and the storm's own requests are all answered, in full
        np.testing.assert_array_equal(await task, expected([f"storm {r} {i}" for i in range(4)]))


async def test_requests_without_a_client_each_take_a_turn_of_their_own():
    """Per request, as before, when no client is named: two requests share each batch half and half."""
    infer = Recorder()
    batcher = DynamicBatcher(infer, num_outputs=2, max_delay_s=0.0, max_batch_size=8, max_queue_texts=10_000)
    batcher._last_batch_texts = 8
    a = [f"a{i}" for i in range(8)]
    b = [f"b{i}" for i in range(8)]
    await asyncio.gather(batcher.submit(a, timeout_s=5), batcher.submit(b, timeout_s=5))
    assert infer.calls[0] == a[:4] + b[:4]


async def test_a_named_client_may_fill_half_the_queue_not_all_of_it():
    """One client's storm is answered 429 at half the queue, so another client's texts still find room."""
    infer = Recorder(delay_s=0.05)
    batcher = DynamicBatcher(infer, num_outputs=2, max_delay_s=0.0, max_batch_size=4, max_queue_texts=40)
    storm = [asyncio.ensure_future(batcher.submit([f"s{r}-{i}" for i in range(8)], timeout_s=10, client="storm"))
             for r in range(2)]  # 16 texts waiting: a third request of 8 would pass 20, half the queue
    await asyncio.sleep(0)
    with pytest.raises(ServiceError) as refused:
        await batcher.submit([f"more {i}" for i in range(8)], timeout_s=10, client="storm")
    assert refused.value.error_type == "overloaded" and "this client" in refused.value.message
    np.testing.assert_array_equal(await batcher.submit(["lone"], timeout_s=10, client="lone"), expected(["lone"]))
    await asyncio.gather(*storm)
    assert batcher._client_texts == {} and batcher.queued_texts == 0  # every text accounted for


async def test_two_workers_run_two_batches_at_once():
    # Each call waits at a two-party barrier: it passes only if the other batch runs at the same
    # time (with one inference thread it would time out and fail both requests).
    barrier = threading.Barrier(2, timeout=10)

    def infer(texts):
        barrier.wait()
        return expected(texts)

    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=1, max_delay_s=0.0, max_queue_texts=10_000,
                             workers=2)
    results = await asyncio.gather(batcher.submit(["one"], timeout_s=20), batcher.submit(["three"], timeout_s=20))
    np.testing.assert_array_equal(results[0], expected(["one"]))
    np.testing.assert_array_equal(results[1], expected(["three"]))


async def test_two_workers_keep_every_request_in_order():
    infer = Recorder(delay_s=0.001)
    batcher = DynamicBatcher(infer, num_outputs=2, max_batch_size=3, max_delay_s=0.001, max_queue_texts=10_000,
                             workers=2)
    requests = [[f"r{i}-t{j}" * (j + 1) for j in range(i % 7 + 1)] for i in range(20)]
    results = await asyncio.gather(*(batcher.submit(r, timeout_s=10) for r in requests))
    for request, result in zip(requests, results):
        np.testing.assert_array_equal(result, expected(request))
    assert sorted(t for call in infer.calls for t in call) == sorted(t for r in requests for t in r)
    assert batcher.queued_texts == 0


def queue(batcher: DynamicBatcher, texts, client=None, groups=None) -> _Pending:
    """Put a request on the queue as ``submit`` does, without starting the batch loop: ``_take_batch``
    is then called by the test, one batch at a time (the turn order, deterministic)."""
    pending = _Pending(texts, asyncio.get_running_loop().create_future(), np.empty((len(texts), 2), np.float32),
                       groups, client=client)
    batcher.check_room(len(texts), client)
    batcher._queue.append(pending)
    batcher.queued_texts += len(texts)
    if client is not None:
        batcher._client_texts[client] = batcher._client_texts.get(client, 0) + len(texts)
    return pending


def taken(batch) -> list[tuple[str | None, int]]:
    """A batch as (client, items taken) per request slice."""
    return [(pending.client, end - start) for pending, start, end in batch]


ROW = [7] * 261  # an explanation row of a 64-word text: ~261 tokens, one fills half a batch


async def test_a_short_text_never_waits_for_another_clients_long_row_in_its_own_batch():
    """Issue 26 item 3: the lone text's batch is the lone text alone, not the lone text plus an
    explanation row (the classifier would run that row as a second pass before answering either)."""
    batcher = DynamicBatcher(Recorder(), num_outputs=2, max_batch_size=32, max_delay_s=0.0, max_queue_texts=10_000)
    queue(batcher, [ROW] * 130, client="storm", groups=[65, 130])
    assert taken(batcher._take_batch()) == [("storm", 1)]  # one row of 261 tokens: two pass BATCH_TOKENS
    queue(batcher, ["a lone text"], client="lone")
    assert taken(batcher._take_batch()) == [("lone", 1)]  # least recently served first, and alone
    assert taken(batcher._take_batch()) == [("storm", 1)]
    queue(batcher, ["a lone text again"], client="lone")
    assert taken(batcher._take_batch()) == [("lone", 1)]


async def test_turns_go_to_the_least_recently_served_client_first():
    batcher = DynamicBatcher(Recorder(), num_outputs=2, max_batch_size=2, max_delay_s=0.0, max_queue_texts=10_000)
    for client in ("a", "b", "c"):
        queue(batcher, [f"{client}{i}" for i in range(4)], client=client)
    # two texts a batch, three clients: a and b first (arrival order), then c, which waited longest
    assert taken(batcher._take_batch()) == [("a", 1), ("b", 1)]
    assert taken(batcher._take_batch()) == [("c", 1), ("a", 1)]
    assert taken(batcher._take_batch()) == [("b", 1), ("c", 1)]


async def test_turns_share_a_batch_by_tokens_not_by_texts():
    """A client of ~100-token texts takes about its half of the batch's tokens, and a client of short
    texts rides in the same batch; by texts alone the first would have filled it."""
    batcher = DynamicBatcher(Recorder(), num_outputs=2, max_batch_size=64, max_delay_s=0.0, max_queue_texts=10_000)
    queue(batcher, ["x" * 400] * 20, client="long")  # 102 tokens each (estimated): short, still
    queue(batcher, ["y" * 72] * 40, client="short")  # 20 tokens each
    batch = batcher._take_batch()
    tokens = {client: 0 for client in ("long", "short")}
    for pending, start, end in batch:
        tokens[pending.client] += sum(_tokens(text) for text in pending.texts[start:end])
    assert tokens["short"] > 0
    assert tokens["long"] <= BATCH_TOKENS // 2 + 102  # its quantum, and at most one item owed past it
    assert sum(tokens.values()) <= BATCH_TOKENS


async def test_over_share_judges_a_clients_next_request_by_its_last():
    """What predictor/share.py asks before a body is read: would this client's next request pass its share?"""
    batcher = DynamicBatcher(Recorder(), num_outputs=2, max_batch_size=4, max_delay_s=0.0, max_queue_texts=40)
    assert not batcher.over_share("storm")  # nothing waiting: a client is never refused on a guess
    queue(batcher, ["s"] * 8, client="storm")
    queue(batcher, ["s"] * 8, client="storm")  # asked room for 8 with 8 waiting: 24 would pass 20
    assert batcher.over_share("storm") and not batcher.over_share("lone")
    while batcher._take_batch():
        pass
    assert not batcher.over_share("storm") and batcher._client_asks == {} and batcher._served == {}
