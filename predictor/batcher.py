"""Dynamic batching for every protocol: concurrent requests share one model call.

Requests put their texts on one queue. A loop (one per inference thread: ``workers``,
the predictor's ``--inference_sessions``) takes up to
``max_batch_size`` texts, in turns across the clients with queued requests (least
recently served first, each a share of the batch's texts and tokens), then across each
client's requests (so neither a long request nor a client's many requests hold another
client's short one back for more than a batch, and a short text never shares its batch
with another client's long row), waiting at most ``max_delay_s`` for the batch to fill (and
not at all when the last batch was a single text: nobody else is coming), and
runs the model on its own thread so the event loop keeps accepting requests
(and answering health checks) while the model computes. A large request is split
across batches; a request past its deadline is answered 504 at once and its texts
that have not started are dropped from the queue.

An item is a text, or a row of token ids (explanation variants, long-text windows).
A request may mark groups of items that belong together (all rows of one text): a
group is never split across batches, so it runs in one forward pass where the token
budget allows; a group larger than ``max_batch_size`` runs alone.

A caller may pass a ``RequestStats`` to ``submit`` to learn where its time went (the
predictor's x-queue-time and x-inference-time headers); each request also carries
its trace context, so the batch-wait and inference spans land in the caller's trace
(runtime/tracing.py; nothing is recorded when tracing is off).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from contract.errors import ErrorType, ServiceError
from predictor import metrics
from runtime import tracing

logger = logging.getLogger(__name__)
# A batch's tokens (a text's estimated): what a lone text may wait behind for a batch to end. 512 kept
# a lone text's wait during an :explain storm near 0.1 s on this project's 2-core machine (1,024: ~0.4 s;
# BENCHMARKS.md, "Fairness"); past a few hundred tokens a forward pass costs per token, so larger
# batches gain little.
BATCH_TOKENS = 512
# An item of at most this many tokens is short: a lone text (~10 tokens), not an explanation row (~260). A
# batch holding one client's short item takes no other client's long row (``_take_batch``).
SHORT_TOKENS = 128
# The least tokens a client's turn adds to its deficit each pass: with thousands of clients queued, a
# batch still fills in a few passes.
MIN_QUANTUM_TOKENS = 32


@dataclass
class BatchResult:
    """What an inference function may return instead of bare probabilities: also what the batch cost."""

    probs: np.ndarray
    tokens: Sequence[int]  # per item, after truncation, special tokens included
    tokenization_s: float = 0.0


Item = str | list[int]
InferFn = Callable[[Sequence[Item]], np.ndarray | BatchResult]


@dataclass
class RequestStats:
    """Where one request's time went, filled in by the batches that carry its texts."""

    queue_s: float = 0.0  # from submit to the start of the first batch carrying its texts
    inference_s: float = 0.0  # the model calls of those batches, tokenization excluded, summed
    tokenization_s: float = 0.0
    tokens: int = 0  # its own texts' tokens
    batches: int = 0


@dataclass(eq=False)
class _Pending:
    """One request's texts, filled in as the batches that carry them finish."""

    texts: Sequence[Item]
    future: asyncio.Future
    result: np.ndarray
    group_ends: Sequence[int] | None = None  # sorted offsets where groups end; None: every text on its own
    stats: RequestStats | None = None
    trace_context: object = None  # the submitter's, when tracing is on
    queued_ns: int = 0
    client: str | None = None  # who sent it (the transformer's hashed rate-limit key): turns are per client
    next_text: int = 0  # first text not yet taken into a batch
    unfinished: int = field(init=False)

    def __post_init__(self):
        self.unfinished = len(self.texts)


class DynamicBatcher:
    def __init__(self, infer: InferFn, num_outputs: int, max_batch_size: int, max_delay_s: float, max_queue_texts: int,
                 workers: int = 1):
        self._infer = infer
        # Inference threads, each taking the next batch when its last one is done: ``infer`` must be
        # safe to call from that many threads at once (the classifier's SessionPool: one session each).
        self.workers = max(1, workers)
        self._num_outputs = num_outputs
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.max_queue_texts = max_queue_texts
        self._queue: deque[_Pending] = deque()
        self.queued_texts = 0
        self._client_texts: dict[str, int] = {}  # texts waiting per named client
        self._client_asks: dict[str, int] = {}  # the texts each client with waiting texts last asked room for
        self._served: dict[object, int] = {}  # the turn that last served each client with waiting texts
        self._turns = 0
        self._last_batch_texts = 1  # texts in the last batch run: how many to wait for next time
        # Created on first use, in the serving process and loop (KServe may fork workers).
        self._executor: ThreadPoolExecutor | None = None
        self._arrived: asyncio.Event | None = None
        self._loop_tasks: list[asyncio.Task] = []

    def __getstate__(self):  # picklable for KServe's multi-worker mode: runtime state is rebuilt per process
        state = self.__dict__.copy()
        state.update(_queue=deque(), queued_texts=0, _client_texts={}, _client_asks={}, _served={},
                     _executor=None, _arrived=None, _loop_tasks=[])
        return state

    def _ensure_running(self) -> None:
        if not self._loop_tasks or any(task.done() for task in self._loop_tasks):
            for task in self._loop_tasks:
                task.cancel()
            self._executor = self._executor or ThreadPoolExecutor(self.workers, thread_name_prefix="inference")
            self._arrived = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._loop_tasks = [loop.create_task(self._run()) for _ in range(self.workers)]

    @property
    def client_share(self) -> int:
        """Texts one named client may have waiting: half the queue."""
        return self.max_queue_texts // 2

    def over_share(self, client: str) -> bool:
        """Whether ``client``'s next request would pass its share, judged before its body is read: by the
        room its last request asked for (predictor/share.py refuses it then, cheaply)."""
        held = self._client_texts.get(client, 0)
        return held > 0 and held + self._client_asks.get(client, 1) > self.client_share

    def check_room(self, count: int, client: str | None = None) -> None:
        """ServiceError 429 ``overloaded`` unless ``count`` more texts of ``client`` may wait now: callers that
        prepare rows first (predictor/expanded.py) ask before that work, with the least they will queue."""
        if self.queued_texts + count > self.max_queue_texts:
            raise ServiceError(
                ErrorType.OVERLOADED,
                f"{self.queued_texts} texts are already waiting (limit {self.max_queue_texts}); retry with backoff.",
            )
        # A named client may fill half the queue, not all of it: its storm is answered 429 before another
        # client's texts are (issue 26).
        held = self._client_texts.get(client, 0) if client is not None else 0
        if held:
            self._client_asks[client] = count  # what its next request likely asks: over_share's estimate
        if client is not None and held + count > self.client_share:
            raise ServiceError(
                ErrorType.OVERLOADED,
                f"{held} texts of this client are already waiting (its share: {self.client_share}, half "
                "the queue); retry with backoff.",
            )

    async def submit(self, texts: Sequence[Item], timeout_s: float, groups: Sequence[int] | None = None,
                     stats: RequestStats | None = None, client: str | None = None) -> np.ndarray:
        """Probabilities for ``texts`` in order; ServiceError 429 if the queue is full, 504 past the deadline.

        ``groups``: sorted offsets where groups of items end (the last one ``len(texts)``).
        ``stats``, when given, is filled in with the request's queue and inference times.
        ``client``: who sent it; batches take turns across clients first, then across a client's requests.
        """
        if not texts:
            return np.zeros((0, self._num_outputs), dtype=np.float32)
        self.check_room(len(texts), client)
        self._ensure_running()
        pending = _Pending(
            texts, asyncio.get_running_loop().create_future(), np.empty((len(texts), self._num_outputs), np.float32),
            groups, stats, tracing.current_context(),
            time.time_ns() if stats is not None or tracing.ENABLED else 0, client,
        )
        self._queue.append(pending)
        self.queued_texts += len(texts)
        if client is not None:
            self._client_texts[client] = self._client_texts.get(client, 0) + len(texts)
        metrics.set_queue(self.queued_texts, self.max_queue_texts)
        self._arrived.set()
        try:
            return await asyncio.wait_for(pending.future, timeout_s)
        except TimeoutError:
            raise ServiceError(
                ErrorType.TIMEOUT, f"Inference did not finish within the {timeout_s:g} s request deadline."
            ) from None

    def _take_batch(self) -> list[tuple[_Pending, int, int]]:
        """Up to max_batch_size texts and ``BATCH_TOKENS`` tokens as (request, start, end) slices.

        Turns are per client (a request without one is a client of its own), least recently served
        first, and within a client its requests in arrival order. Each pass over the clients gives each
        one a share of the batch's texts and a quantum of its tokens (deficit round robin by tokens,
        the deficit kept for the batch): a client of short texts is not outweighed by one whose rows
        are long, and a lone text that arrives behind a storm of explanation rows, or behind many
        requests of one client, rides in the next batch (issue 26). A short text (``SHORT_TOKENS``) and
        another client's long row never share a batch: the classifier runs them as separate passes
        anyway (classifier.py ``_chunks``), and the short text would wait for the long row's pass.
        """
        lanes: dict[object, list[_Pending]] = {}
        for pending in list(self._queue):
            if pending.future.done():  # timed out: drop what it still had queued
                self._queue.remove(pending)
                self._unqueue(pending, len(pending.texts) - pending.next_text)
                continue
            lanes.setdefault(_lane(pending), []).append(pending)
        order = sorted(lanes, key=lambda lane: self._served.get(lane, -1))  # stable: arrival order among equals
        batch: list[tuple[_Pending, int, int]] = []
        size = spent = 0
        short_lanes: set[object] = set()  # clients with a short item in the batch, and with a long one
        long_lanes: set[object] = set()
        turn = max(1, self.max_batch_size // max(1, len(order)))
        quantum = max(MIN_QUANTUM_TOKENS, BATCH_TOKENS // max(1, len(order)))
        deficit = dict.fromkeys(order, 0)
        while order and size < self.max_batch_size and spent < BATCH_TOKENS:
            took = owed = False
            for lane in order:
                deficit[lane] += quantum
                share = turn
                for pending in lanes[lane]:  # the client's requests in arrival order, within its shares
                    start = pending.next_text
                    remaining = len(pending.texts) - start
                    if remaining == 0:  # finished in an earlier pass
                        continue
                    room = min(self.max_batch_size - size, share)
                    if room <= 0 or spent >= BATCH_TOKENS:
                        break
                    take = min(remaining, room)
                    if pending.group_ends is not None and take < remaining:
                        # whole groups within the share; else the next group if it fits the room (or the batch
                        # is empty)
                        take = (_group_take(pending.group_ends, start, take, alone=False)
                                or _group_take(pending.group_ends, start, self.max_batch_size - size,
                                               alone=size == 0))
                    # ... and within the batch's tokens and the client's quantum: a group (explanation rows) is
                    # cut where it passes them; the first item of an empty batch always goes
                    taken = 0
                    while taken < take:
                        cost = _tokens(pending.texts[start + taken])
                        if size + taken > 0:
                            if spent + cost > BATCH_TOKENS or _mixes(lane, cost, short_lanes, long_lanes):
                                break
                            if cost > deficit[lane]:
                                owed = True  # its quantum grows in the next pass
                                break
                        deficit[lane] -= cost
                        spent += cost
                        (short_lanes if cost <= SHORT_TOKENS else long_lanes).add(lane)
                        taken += 1
                    if taken == 0:  # its next item waits: the client's later requests wait behind it
                        break  # (its own order is kept)
                    batch.append((pending, start, start + taken))
                    pending.next_text += taken
                    size += taken
                    share -= taken
                    self._unqueue(pending, taken)
                    took = True
                    if pending.next_text == len(pending.texts):
                        self._queue.remove(pending)
                    else:
                        break
            if not took and not owed:
                break
        for pending, _, _ in batch:  # in the batch's order: the next batch's turns go round from there
            self._served[_lane(pending)] = self._turns
            self._turns += 1
        # remembered only while a client has texts queued: the map stays as small as the queue
        queued = {_lane(pending) for pending in self._queue}
        self._served = {lane: n for lane, n in self._served.items() if lane in queued}
        return batch

    def _unqueue(self, pending: _Pending, count: int) -> None:
        """``count`` of ``pending``'s texts leave the queue (taken into a batch, or dropped)."""
        self.queued_texts -= count
        if pending.client is not None:
            left = self._client_texts.get(pending.client, 0) - count
            if left > 0:
                self._client_texts[pending.client] = left
            else:
                self._client_texts.pop(pending.client, None)
                self._client_asks.pop(pending.client, None)

    async def _wait_for_batch(self) -> None:
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        # Wait for company only when company is coming: the batch that just finished
        # predicts the next one (its closed-loop clients come back). A lone client, or a
        # trickle of requests, goes straight to an idle model instead of sitting out the
        # delay; under load the target grows with the batches that form while the model runs.
        target = min(self.max_batch_size, self._last_batch_texts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay_s
        while self.queued_texts < target and (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_batch()
            batch = self._take_batch()
            metrics.set_queue(self.queued_texts, self.max_queue_texts)
            if not batch:
                continue
            texts = [text for pending, start, end in batch for text in pending.texts[start:end]]
            self._last_batch_texts = len(texts)
            metrics.observe_batch(len(texts))
            started_ns = time.time_ns()
            try:
                result = await loop.run_in_executor(self._executor, self._infer, texts)
            except Exception as exc:  # a model failure fails this batch's requests, not the loop
                logger.exception("Inference failed for a batch of %d texts", len(texts))
                if len(batch) == 1:
                    _fail(batch[0][0], exc)
                else:  # each request alone: one request's bad text must not fail the others
                    await self._isolate(batch)
                continue
            self._deliver(batch, result, started_ns)

    async def _isolate(self, batch: list[tuple[_Pending, int, int]]) -> None:
        loop = asyncio.get_running_loop()
        for part in batch:
            pending, start, end = part
            if pending.future.done():
                continue
            started_ns = time.time_ns()
            try:
                result = await loop.run_in_executor(self._executor, self._infer, list(pending.texts[start:end]))
            except Exception as exc:
                logger.warning("Inference failed for a request's %d texts run alone: %s", end - start, exc)
                _fail(pending, exc)
                continue
            self._deliver([part], result, started_ns)

    def _deliver(self, batch: list[tuple[_Pending, int, int]], result: np.ndarray | BatchResult,
                 started_ns: int) -> None:
        probs = result.probs if isinstance(result, BatchResult) else result
        if isinstance(result, BatchResult):
            _account(batch, result, started_ns, time.time_ns())
        offset = 0
        for pending, start, end in batch:
            pending.result[start:end] = probs[offset : offset + end - start]
            offset += end - start
            pending.unfinished -= end - start
            if pending.unfinished == 0 and not pending.future.done():
                pending.future.set_result(pending.result)


def _lane(pending: _Pending) -> object:
    """Whose turn a request's texts take: its client's, or its own when it names none."""
    return pending.client if pending.client is not None else id(pending)


def _mixes(lane: object, cost: int, short_lanes: set, long_lanes: set) -> bool:
    """Whether an item of ``lane`` costing ``cost`` tokens would put a short item and another client's
    long one in the same batch."""
    others = long_lanes if cost <= SHORT_TOKENS else short_lanes
    return bool(others) and (len(others) > 1 or lane not in others)


def _tokens(item: Item) -> int:
    """A row's tokens, or a text's estimated ones (~4 characters a token, at most a full row)."""
    return len(item) if isinstance(item, list) else min(len(item) // 4 + 2, 512)


def _fail(pending: _Pending, exc: Exception) -> None:
    if not pending.future.done():
        pending.future.set_exception(exc)


def _group_take(group_ends: Sequence[int], start: int, room: int, alone: bool) -> int:
    """Items to take from ``start`` so that no group is cut: whole groups within ``room``, or, in an
    empty batch, at least the first group whatever its size."""
    fits = bisect.bisect_right(group_ends, start + room) - 1  # the last group end within room
    if fits >= 0 and group_ends[fits] > start:
        return group_ends[fits] - start
    return group_ends[bisect.bisect_right(group_ends, start)] - start if alone else 0


def _account(batch: list[tuple[_Pending, int, int]], result: BatchResult, started_ns: int, ended_ns: int) -> None:
    """Each request's share of one finished batch: its stats, and its batch-wait and inference spans."""
    offset = 0
    model_s = (ended_ns - started_ns) / 1e9 - result.tokenization_s
    attributes = {"batch.size": len(result.tokens), "batch.tokens": int(sum(result.tokens))}
    for pending, start, end in batch:
        tokens = int(sum(result.tokens[offset : offset + end - start]))
        offset += end - start
        first = start == 0
        if pending.stats is not None:
            stats = pending.stats
            if first:
                stats.queue_s = (started_ns - pending.queued_ns) / 1e9
            stats.inference_s += model_s
            stats.tokenization_s += result.tokenization_s
            stats.tokens += tokens
            stats.batches += 1
        if pending.trace_context is not None:
            if first:
                tracing.record("batch wait", pending.trace_context, pending.queued_ns, started_ns)
            tracing.record("inference", pending.trace_context, started_ns, ended_ns,
                           {**attributes, "request.texts": end - start, "request.tokens": tokens})
