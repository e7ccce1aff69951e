"""The KServe transformer: validate, answer cached texts from Redis, send only the misses on.

Per request: parse and check limits with the shared schema; dedupe texts; one MGET
for all of them under the expected model version; the misses (minus texts another
request is already computing) go to the predictor in one call; its answers are
written back with one pipelined SET, under the version that actually computed them;
results are merged back in input order. With ``--cache_headers`` the ``x-cache`` header
says hit, miss or partial, ``x-cache-hits`` how many distinct texts Redis answered, and
the predictor's timing headers come along (contract/timings.py); off by default, since
each tells any client whether a text was sent recently. ``x-request-id`` and the trace
context (runtime/tracing.py) go to the predictor.

``truncation`` (request parameter, else ``--truncation``) and explanations (V1
``:explain``, V2 ``explain: true``) are cached per text too, apart from the plain
predictions (transformer/variants.py); the predictor computes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract import schema, timings
from contract.cachekey import DEV_SECRET, CacheKeys
from contract.errors import ErrorType, ServiceError
from contract.parameters import DEFAULT_TRUNCATION, Options
from contract.scores import Scores
from runtime import answers, tracing
from runtime.accesslog import new_request_id, valid_request_id
from runtime.face import TextClassificationModel
from runtime.metrics import child
from runtime.settings import deadline_order_problem
from transformer import ratelimit
from transformer.cache import TextCache, decode_row
from transformer.coalesce import Coalescer
from transformer.fastpath import prefetched
from transformer.metrics import CACHE_LOOKUPS, COALESCED, PREDICTOR_TEXTS
from transformer.shadow import ShadowScorer
from transformer.upstream import PredictorClient
from transformer.variants import Answer, Variant, with_words

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
                 pinned_version: str | None, shadow: ShadowScorer | None = None, truncation: str = DEFAULT_TRUNCATION,
                 explain: bool = True, keys: CacheKeys | None = None, cache_headers: bool = False):
        super().__init__(name, limits, return_response_headers=True)
        self.predictor = predictor
        self.cache = cache
        self.truncation = truncation  # for requests that do not choose
        self.explain_enabled = explain
        self.keys = keys or CacheKeys(DEV_SECRET)
        # x-cache and x-cache-hits tell any client whether anyone sent a text recently: opt-in (the fast
        # path reads this too, so both paths answer the same headers)
        self.cache_headers = cache_headers
        # Reads use the pinned version when set (a canary's transformer pins its own model's
        # version), else the version the predictor last reported. Writes always use the
        # version that computed the answer.
        self.pinned_version = pinned_version
        self.coalescer = Coalescer()
        self.shadow = shadow  # also scores a share of the misses on a candidate model; never answers
        self._info: ModelInfo | None = None
        self._info_lock = asyncio.Lock()
        self._deadline_checked = False
        self.refusal: str | None = None  # why this transformer refuses to serve (its deadline is not the later)
        for counter, *values in ((CACHE_LOOKUPS, "hit"), (CACHE_LOOKUPS, "miss"), (PREDICTOR_TEXTS,), (COALESCED,)):
            child(counter, name, *values)  # every series exported from the start, at 0, for rate() and ratios

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
                if not self._deadline_checked:
                    await self._check_deadline()
                if self.refusal is not None:
                    raise ServiceError(ErrorType.MODEL_NOT_READY, f"This transformer refuses to serve: {self.refusal}.")
                if self._info is None:  # an empty inference tells the labels and the version
                    self._learn((await self.predictor.infer(self.name, [], request_id))[0])
        return self._info

    async def _check_deadline(self) -> None:
        """At first contact: the predictor's own deadline must come first, or its 504 and ours race.

        Checked once the predictor has published it (a scaled-to-zero predictor is not woken at
        start-up for this); where it cannot be read (gRPC, an older predictor) it is not checked.
        A wrong order makes this transformer not ready, with the reason in the log and in every answer.
        """
        predictor_s = await self.predictor.deadline_s(self.name)
        if predictor_s is None:
            return
        self._deadline_checked = True
        self.refusal = deadline_order_problem(self.predictor.timeout_s, predictor_s)
        if self.refusal is not None:
            logger.error("Not ready: %s", self.refusal)
            self.ready = False

    async def _fetch(self, variant: Variant, keys_and_texts: list[tuple[str, str]], request_id: str,
                     answered: dict) -> dict:
        """The misses from the predictor, written back under the version that computed them: a plain
        prediction as its row of probabilities (and shadowed), any other variant as an ``Answer``."""
        texts = [text for _, text in keys_and_texts]
        scores, predictor_timings = await self.predictor.infer(self.name, texts, request_id, variant.parameters(),
                                                               ratelimit.client_name())
        answered.update(predictor_timings)
        child(PREDICTOR_TEXTS, self.name).inc(len(texts))
        self._learn(scores)
        if not variant.key_tag:
            if self.shadow is not None:
                self.shadow.submit(texts, scores, request_id)  # in the background: this answer never waits for it
            computed = stored = list(scores.probs)
        else:
            if (variant.chunks and scores.windows is None) or (variant.explain and scores.explanations is None):
                raise ServiceError(ErrorType.BAD_GATEWAY,
                                   f"The predictor's answer lacks what {variant.parameters()} asks for.")
            computed = [
                Answer(row, windows=scores.windows[i] if variant.chunks else None,
                       explanation=scores.explanations[i] if variant.explain else None)
                for i, row in enumerate(scores.probs)
            ]
            stored = [variant.encode(answer) for answer in computed]
        with tracing.span("cache write", {"texts": len(texts)}):
            await self.cache.set_many({self.keys.key(self.name, scores.model_version, text, variant.key_tag): value
                                       for text, value in zip(texts, stored)})
        # with the version that computed each: the answer metrics count it under that version
        return {key_and_text: (answer, scores.model_version) for key_and_text, answer in zip(keys_and_texts, computed)}

    async def _through_cache(self, texts: Sequence[str], tag: str, decode, fetch,
                             request_id: str, charge=None) -> tuple[list, np.ndarray, dict]:
        """Each text's answer, cache first: one lookup, the misses computed once (coalesced) by
        ``fetch(todo, answered)``; counts the answers per model version.
        Returns the answers in the texts' order, their probabilities and the answer headers."""
        width = len(self._info.labels)
        distinct = list(dict.fromkeys(texts))
        key = self.keys.key
        keys = [key(self.name, self.read_version, text, tag) for text in distinct]
        with tracing.span("cache lookup", {"texts": len(keys)}) as lookup:
            raw = prefetched(keys)  # the fast path's lookup, when it handed this request on (a miss)
            if raw is None:
                raw = await self.cache.get_raw_many(keys)
            cached = [decode(value, width) for value in raw]
            found = {text: answer for text, answer in zip(distinct, cached) if answer is not None}
            tracing.set_attributes(lookup, {"cache.hits": len(found)})
        versions = dict.fromkeys(found, self.read_version)
        misses = [(key, text) for key, text, answer in zip(keys, distinct, cached) if answer is None]
        if found:
            child(CACHE_LOOKUPS, self.name, "hit").inc(len(found))
        answered: dict = {}  # the predictor's timing headers, when this request called it
        if misses:
            if charge is not None:  # the rate limit's cost: what the model must compute (429 if over)
                charge([text for _, text in misses])
            child(CACHE_LOOKUPS, self.name, "miss").inc(len(misses))
            computed, coalesced = await self.coalescer.compute(misses, lambda todo: fetch(todo, answered))
            child(COALESCED, self.name).inc(coalesced)
            # with the version that computed each: the answer metrics count it under that version
            found.update({text: answer for (_, text), (answer, _) in computed.items()})
            versions.update({text: version for (_, text), (_, version) in computed.items()})
        picked = [found[text] for text in texts]
        probs = (np.stack([a.probs if isinstance(a, Answer) else a for a in picked]) if picked
                 else np.zeros((0, width), np.float32))
        self._count_answers(texts, probs, versions)
        return picked, probs, _answer_headers(request_id, len(misses), len(distinct), answered, self.cache_headers)

    async def score(self, texts: Sequence[str], headers: dict, options: Options) -> Scores:
        request_id = valid_request_id(headers.get("x-request-id")) or new_request_id()  # gRPC's is the client's
        await self.model_info(request_id)
        variant = Variant.of(options, self.truncation)
        if variant.explain and not self.explain_enabled:
            raise ServiceError(ErrorType.NOT_IMPLEMENTED,
                               "Explanations are turned off on this server (--explain false).")
        # the plain head prediction is a row of probabilities; anything else (explanations, other
        # truncations) an Answer, cached under its own tag
        picked, probs, measured = await self._through_cache(
            texts, variant.key_tag, variant.decode if variant.key_tag else decode_row,
            lambda todo, answered: self._fetch(variant, todo, request_id, answered), request_id,
            lambda missed: ratelimit.charge(missed, variant.explain, variant.chunks))
        return Scores(probs, self._info.labels, self.read_version,
                      windows=[a.windows for a in picked] if variant.chunks else None,
                      explanations=[with_words(a.explanation, text) for a, text in zip(picked, texts)]
                      if variant.explain else None, measured=measured)

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


def _answer_headers(request_id: str, misses: int, distinct: int, answered: dict, cache_headers: bool) -> dict:
    """x-request-id; with ``cache_headers`` (``--cache_headers``) also x-cache, x-cache-hits and, when this
    request called the predictor, its timing headers.

    The timings are absent, not zero, when nothing was computed for it (every text a hit, or coalesced onto
    another request's call): on the cache-hit path, the service's hottest, every header costs (BENCHMARKS.md).
    That absence (and x-compute-tokens) tells a hit from a miss as plainly as x-cache does, so the switch
    governs them all."""
    if not cache_headers:
        return {"x-request-id": request_id}
    return {"x-cache": cache_outcome(misses, distinct), "x-request-id": request_id,
            timings.CACHE_HITS: str(distinct - misses), **answered}
