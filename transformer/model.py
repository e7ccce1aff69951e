"""The KServe transformer: validate, answer cached texts from Redis, send only the misses on.

Per request: parse and check limits with the shared schema; dedupe texts; one MGET
for all of them under the expected model version; the misses (minus texts another
request is already computing) go to the predictor in one call; its answers are
written back with one pipelined SET, under the version that actually computed them;
results are merged back in input order. The ``x-cache`` header says hit, miss or
partial; ``x-request-id`` goes to the predictor and comes back.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract import schema
from contract.cachekey import cache_key
from contract.model import Scores, TextClassificationModel
from runtime import answers
from transformer.cache import TextCache
from transformer.coalesce import Coalescer
from transformer.metrics import CACHE_LOOKUPS, COALESCED, PREDICTOR_TEXTS
from transformer.shadow import ShadowScorer
from transformer.upstream import PredictorClient

logger = logging.getLogger(__name__)


def cache_outcome(misses: int, distinct: int) -> str:
    """The x-cache header: hit when the model was not needed, miss when it computed everything."""
    if misses == 0:
        return "hit"
    return "miss" if misses == distinct else "partial"


@dataclass
class ModelInfo:
    labels: list[str]
    model_version: str


class CachingTransformer(TextClassificationModel):
    def __init__(self, name: str, predictor: PredictorClient, cache: TextCache, limits: schema.Limits,
                 pinned_version: str | None, shadow: ShadowScorer | None = None):
        super().__init__(name, limits, return_response_headers=True)
        self.predictor = predictor
        self.cache = cache
        # Reads use the pinned version when set (a canary's transformer pins its own model's
        # version), else the version the predictor last reported. Writes always use the
        # version that computed the answer.
        self.pinned_version = pinned_version
        self.coalescer = Coalescer()
        self.shadow = shadow  # also scores a share of the misses on a candidate model; never answers
        self._info: ModelInfo | None = None
        self._info_lock = asyncio.Lock()

    def load(self) -> bool:
        self.ready = True  # labels and version are learned from the predictor on first use
        return True

    def stop(self) -> None:
        """KServe unloads the model when the server stops: close the predictor's and Redis' connection pools.

        Without it aiohttp logs ``Unclosed client session`` at every exit. KServe calls
        this synchronously from its stop, inside the serving loop, which keeps running
        while gRPC drains: the close is a task on that loop.
        """
        super().stop()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # stopped outside a loop (tests): nothing was opened in one
            return
        self._closing = loop.create_task(self._close())

    async def _close(self) -> None:
        await self.predictor.close()
        await self.cache.close()

    @property
    def read_version(self) -> str:
        return self.pinned_version or self._info.model_version

    @property
    def labels(self) -> list[str] | None:
        return self._info.labels if self._info else None

    @property
    def model_version(self) -> str | None:
        return self.read_version if self._info or self.pinned_version else None

    def _learn(self, scores: Scores) -> None:
        if self._info is None or scores.model_version != self._info.model_version or scores.labels != self._info.labels:
            if self._info is not None:
                logger.info("Predictor model version is now %s (was %s)", scores.model_version, self._info.model_version)
            self._info = ModelInfo(labels=scores.labels, model_version=scores.model_version)
        if self.pinned_version and scores.model_version != self.pinned_version:
            logger.warning("Pinned cache version %s, but the predictor answered as %s",
                           self.pinned_version, scores.model_version)

    async def model_info(self, request_id: str) -> ModelInfo:
        if self._info is None:
            async with self._info_lock:
                if self._info is None:  # an empty inference tells the labels and the version
                    self._learn(await self.predictor.infer(self.name, [], request_id))
        return self._info

    async def _fetch(self, keys_and_texts: list[tuple[str, str]], request_id: str) -> dict:
        texts = [text for _, text in keys_and_texts]
        scores = await self.predictor.infer(self.name, texts, request_id)
        PREDICTOR_TEXTS.labels(self.name).inc(len(texts))
        self._learn(scores)
        if self.shadow is not None:
            self.shadow.submit(texts, scores, request_id)  # in the background: this answer never waits for it
        await self.cache.set_many(
            {cache_key(self.name, scores.model_version, text): row for text, row in zip(texts, scores.probs)}
        )
        # with the version that computed each row: the answer metrics count it under that version
        return {key_and_text: (row, scores.model_version) for key_and_text, row in zip(keys_and_texts, scores.probs)}

    async def score(self, texts: Sequence[str], headers: dict, response_headers: dict | None) -> Scores:
        request_id = headers.get("x-request-id") or str(uuid.uuid4())
        info = await self.model_info(request_id)
        distinct = list(dict.fromkeys(texts))
        keys = [cache_key(self.name, self.read_version, text) for text in distinct]
        cached = await self.cache.get_many(keys, len(info.labels))
        rows = {text: row for text, row in zip(distinct, cached) if row is not None}
        versions = dict.fromkeys(rows, self.read_version)
        misses = [(key, text) for key, text, row in zip(keys, distinct, cached) if row is None]
        CACHE_LOOKUPS.labels(self.name, "hit").inc(len(rows))
        CACHE_LOOKUPS.labels(self.name, "miss").inc(len(misses))
        if misses:
            computed, coalesced = await self.coalescer.compute(misses, lambda todo: self._fetch(todo, request_id))
            COALESCED.labels(self.name).inc(coalesced)
            rows.update({text: row for (_, text), (row, _) in computed.items()})
            versions.update({text: version for (_, text), (_, version) in computed.items()})
        width = len(self._info.labels)
        probs = np.stack([rows[text] for text in texts]) if texts else np.zeros((0, width), np.float32)
        self._count_answers(texts, probs, versions)
        if response_headers is not None:
            response_headers["x-cache"] = cache_outcome(len(misses), len(distinct))
            response_headers["x-request-id"] = request_id
        return Scores(probs, self._info.labels, self.read_version)

    def _count_answers(self, texts: Sequence[str], probs: np.ndarray, versions: dict[str, str]) -> None:
        """What users received, per model version: cache hits under the version read, misses under the computing one."""
        distinct_versions = set(versions.values())
        if len(distinct_versions) <= 1:  # the usual case: one version for the whole request
            answers.observe(self.name, distinct_versions.pop() if distinct_versions else "", self._info.labels, probs)
            return
        of_text = np.array([versions[text] for text in texts])
        for version in distinct_versions:
            answers.observe(self.name, version, self._info.labels, probs[of_text == version])

    def describe(self) -> dict:
        return {"cache": {"ttl_s": self.cache.ttl_s, "circuit": self.cache.breaker.state}}
