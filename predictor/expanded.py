"""Requests that cost more than one model row per text: ``head_tail``/``chunks`` and explanations.

Their rows (windows, occlusion variants) are token ids built off the event loop, then
queued on the same batcher as every prediction, one group per text, so they share
batches, the token budget, the queue limit (429) and the deadline (504) with plain
texts. A request is refused up front (413 ``request_too_large``) when its texts would
need more than ``max_rows`` rows in all: the cost of one request stays bounded
whatever the texts are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from contract.errors import ErrorType, ServiceError
from predictor import explain, windows
from predictor.batcher import DynamicBatcher, RequestStats
from predictor.classifier import TextClassifier

PREPARE_THREADS = 1  # tokenizing is CPU work: more threads than one would only share the same cores


@dataclass(frozen=True)
class ExpansionLimits:
    """From the settings (--max_request_rows, --max_windows, --window_overlap, --explain_max_words)."""

    max_rows: int  # model rows one request may need (windows + explanation variants)
    max_windows: int  # windows per text under truncation chunks
    window_overlap: int  # tokens consecutive windows share
    explain_max_words: int
    # An explanation is many rows for a few bytes (63 texts of 64 words: ~4,096 rows from a 36 KB body):
    # its own, much smaller limit keeps one :explain request from holding the model for seconds (issue 26).
    max_explain_rows: int = 260


class Expander:
    def __init__(self, classifier: TextClassifier, batcher: DynamicBatcher, limits: ExpansionLimits):
        self.classifier = classifier
        self.batcher = batcher
        self.limits = limits
        self.windowing = windows.Windowing(
            classifier.tokenizer, classifier.max_length, overlap=limits.window_overlap, max_windows=limits.max_windows
        )
        self._pool: ThreadPoolExecutor | None = None

    def __getstate__(self):  # picklable for KServe's multi-worker mode, like the batcher
        return {**self.__dict__, "_pool": None}

    def _check_rows(self, count: int, what: str, limit: int | None = None, flag: str = "--max_request_rows",
                    at_least: bool = False) -> None:
        limit = self.limits.max_rows if limit is None else limit
        if count > limit:
            raise ServiceError(
                ErrorType.REQUEST_TOO_LARGE,
                f"The request needs {'at least ' if at_least else ''}{count} model rows ({what}); the limit is "
                f"{limit} per request ({flag}). Send fewer or shorter texts per request.",
            )

    async def _prepare(self, fn, *args):
        """``fn(*args)`` on the preparation thread: one, so concurrent requests queue for it instead of
        each taking a thread of the default pool (and tokenizing at once, memory and all)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor(), fn, *args)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:  # made in the serving process: KServe may fork workers after __init__
            self._pool = ThreadPoolExecutor(PREPARE_THREADS, thread_name_prefix="prepare")
        return self._pool

    async def _run(self, rows: Sequence[list[int]], groups: Sequence[int], deadline: float,
                   stats: RequestStats | None, client: str | None) -> np.ndarray:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise ServiceError(ErrorType.TIMEOUT, "Preparing the request's rows took the whole request deadline.")
        return await self.batcher.submit(list(rows), remaining, groups=groups, stats=stats, client=client)

    async def score(self, texts: Sequence[str], strategy: str, timeout_s: float,
                    field_name: str = "instances", stats: RequestStats | None = None,
                    client: str | None = None) -> tuple[np.ndarray, list[int] | None]:
        """Probabilities under ``strategy`` and, for chunks, the windows each text took."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        if not texts:
            return np.zeros((0, len(self.classifier.labels)), np.float32), ([] if strategy == "chunks" else None)
        self.batcher.check_room(len(texts), client)  # a row a text at least: a full queue refuses before tokenizing
        rows = await self._prepare(self.windowing.rows, texts, strategy, field_name, self.limits.max_rows)
        probs = windows.combine(await self._run(rows.rows, rows.groups, deadline, stats, client), rows)
        return probs, (rows.windows if strategy == "chunks" else None)

    def _plans(self, texts: Sequence[str], granularity: str) -> list[explain.Plan]:
        tokenizer, max_words = self.classifier.tokenizer, self.limits.explain_max_words
        return [explain.plan(tokenizer, text, granularity, max_words) for text in texts]

    async def explain(self, texts: Sequence[str], granularity: str, timeout_s: float,
                      stats: RequestStats | None = None, client: str | None = None) -> tuple[np.ndarray, list[dict]]:
        """Each text's probabilities (of its explained input) and its explanation."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        labels = self.classifier.labels
        if not texts:
            return np.zeros((0, len(labels)), np.float32), []
        limit = min(self.limits.max_explain_rows, self.limits.max_rows)
        # a row a text at least (the text itself): refused before any tokenizing
        self._check_rows(len(texts), "one per text at least", limit, "--max_explain_rows", at_least=True)
        # the rows it will queue, counted in words (a word is a row, nearly always): a client at its share of
        # the queue is refused before the tokenizing, not after it
        words = sum(min(explain.count_words(text, self.limits.explain_max_words), limit) + 1 for text in texts)
        self.batcher.check_room(min(words, limit), client)
        plans = await self._prepare(self._plans, texts, granularity)
        rows = [row for p in plans for row in p.rows]
        self._check_rows(len(rows), "one per explained word, plus the text", limit, "--max_explain_rows")
        groups = np.cumsum([len(p.rows) for p in plans]).tolist()
        probs = await self._run(rows, groups, deadline, stats, client)
        starts = [0, *groups]
        answers = [explain.explanation(p, probs[s:e], labels) for p, s, e in zip(plans, starts, starts[1:])]
        return probs[starts[:-1]], answers
