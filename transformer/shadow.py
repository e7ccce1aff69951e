"""Shadow scoring: a share of the texts sent to the predictor also go to a candidate model, for comparison only.

KServe has no shadow deployments (kserve issues 2978, 2240), and mesh mirroring
(Istio ``mirror``) throws the mirrored answer away, so nothing compares it text by
text. Here the transformer, which already holds the primary's answer for every cache
miss, sends ``--shadow_percent`` of those texts to ``--shadow_predictor_host`` after
the primary answered, and per text records whether the top labels agree and how far
apart the two scores of the primary's label are, per (primary version, shadow
version).

The user's answer never waits for, and never fails because of, the shadow:
``submit`` only starts a background task; at most ``--shadow_max_in_flight`` shadow
calls run at once (more are dropped at once and counted, never queued); every call
has its own ``--shadow_timeout_ms``; every failure is counted and swallowed. Shadow
answers are never cached and never returned. Labels are matched by name, not by
position, so a candidate whose ``id2label`` order differs is compared correctly.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from contract.errors import ErrorType, ServiceError
from contract.parameters import Truncation
from contract.scores import Scores
from transformer.upstream import PredictorClient

logger = logging.getLogger(__name__)

SHADOW_TEXTS = Counter(
    "transformer_shadow_texts_total",
    "Texts chosen for shadow scoring, by outcome: compared, dropped (too many shadow calls in flight), timeout, error",
    ["model_name", "outcome"],
)
COMPARED = Counter(
    "transformer_shadow_compared_texts_total",
    "Texts answered by both the primary and the shadow predictor, per (primary version, shadow version)",
    ["model_name", "primary_version", "shadow_version"],
)
AGREED = Counter(
    "transformer_shadow_agreed_texts_total",
    "Compared texts whose top label is the same on both models (agreement = agreed / compared)",
    ["model_name", "primary_version", "shadow_version"],
)
SCORE_DIFFERENCE = Histogram(
    "transformer_shadow_score_difference",
    "Per compared text: |primary score - shadow score| of the primary's top label",
    ["model_name", "primary_version", "shadow_version"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
)
IN_FLIGHT = Gauge("transformer_shadow_in_flight", "Shadow calls running now", ["model_name"],
                  multiprocess_mode="livesum")


def compare(primary_labels: Sequence[str], primary: np.ndarray, shadow_labels: Sequence[str],
            shadow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per text: do the top labels agree (by name), and |primary - shadow| score of the primary's top label.

    A label the shadow does not have scores 0 there (a model with other labels disagrees).
    """
    best = primary.argmax(axis=1)
    primary_top = np.asarray(primary_labels, dtype=object)[best]
    agree = primary_top == np.asarray(shadow_labels, dtype=object)[shadow.argmax(axis=1)]
    column = {label: i for i, label in enumerate(shadow_labels)}
    rows = np.arange(len(primary))
    shadow_scores = np.array([shadow[r, column[label]] if label in column else 0.0
                              for r, label in zip(rows, primary_top)], dtype=np.float64)
    return agree.astype(bool), np.abs(primary[rows, best].astype(np.float64) - shadow_scores)


class ShadowScorer:
    def __init__(self, model_name: str, client: PredictorClient, percent: float = 100.0, max_in_flight: int = 8,
                 seed: int | None = None):
        if not 0 <= percent <= 100:
            raise ValueError(f"--shadow_percent must be within 0..100, not {percent}")
        if max_in_flight < 1:
            raise ValueError(f"--shadow_max_in_flight must be at least 1, not {max_in_flight}")
        self.model_name = model_name
        self.client = client
        self.fraction = percent / 100
        self.max_in_flight = max_in_flight
        self._random = random.Random(seed)
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()  # a reference per task: the loop keeps only weak ones

    def __getstate__(self):  # picklable for KServe's multi-worker mode; each worker runs its own tasks
        return {**self.__dict__, "_tasks": set(), "_in_flight": 0}

    def submit(self, texts: list[str], primary: Scores, request_id: str) -> None:
        """Shadow-score a ``--shadow_percent`` sample of ``texts`` (just answered as ``primary``); never waits."""
        chosen = [i for i in range(len(texts)) if self._random.random() < self.fraction]
        if not chosen:
            return
        if self._in_flight >= self.max_in_flight:
            SHADOW_TEXTS.labels(self.model_name, "dropped").inc(len(chosen))
            return
        self._in_flight += 1
        IN_FLIGHT.labels(self.model_name).inc()
        task = asyncio.get_running_loop().create_task(
            self._score([texts[i] for i in chosen], primary.probs[chosen], primary, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score(self, texts: list[str], primary_probs: np.ndarray, primary: Scores, request_id: str) -> None:
        outcome = "error"
        try:
            # the primary's truncation, explicitly (its own default never decides); its timings are not ours
            shadow, _ = await self.client.infer(self.model_name, texts, request_id, {"truncation": Truncation.HEAD})
            agree, difference = compare(primary.labels, primary_probs, shadow.labels, shadow.probs)
            series = (self.model_name, primary.model_version, shadow.model_version)
            COMPARED.labels(*series).inc(len(texts))
            AGREED.labels(*series).inc(int(agree.sum()))
            histogram = SCORE_DIFFERENCE.labels(*series)
            for value in difference:
                histogram.observe(value)
            outcome = "compared"
        except ServiceError as exc:
            outcome = "timeout" if exc.error_type == ErrorType.TIMEOUT else "error"
            logger.debug("Shadow call failed (%s): %s", exc.error_type, exc)
        except Exception:  # a shadow must never hurt the user's answer, whatever it does
            logger.warning("Shadow scoring failed", exc_info=True)
        finally:
            self._in_flight -= 1
            IN_FLIGHT.labels(self.model_name).dec()
            SHADOW_TEXTS.labels(self.model_name, outcome).inc(len(texts))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()
