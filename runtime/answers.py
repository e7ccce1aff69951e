"""What the model answered, per model version: the top label of every text and its score (the confidence).

Latency and error panels cannot see a canary that is fast and wrong (labels flipped,
a broken tokenizer, a threshold moved by quantization); its label shares and its
confidence can. Both services count every text they answer here: the predictor what
its model computed, the transformer what users received (cache hits included), so a
dashboard can compare revisions (``revision`` comes from the scrape) and
``python -m rollout.verdict`` can measure how far a canary's label shares moved.

Cost: one ``argmax`` per request, then for a few texts one counter increment and one
histogram observation each, for more one increment per label present and one bulk
histogram update, whatever the number of texts (BENCHMARKS.md, "Label metrics").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import Counter, Histogram

# Two labels put the top score in [0.5, 1], six in [1/6, 1]: fine steps where a
# threshold shift or a collapse towards uniform scores would show.
CONFIDENCE_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

ANSWERS = Counter(
    "text_classifier_answers_total",
    "Texts answered, by model version and top label (the transformer counts cache hits too)",
    ["model_name", "model_version", "label"],
)
CONFIDENCE = Histogram(
    "text_classifier_answer_confidence",
    "Top score of every text answered (the score of its label), by model version",
    ["model_name", "model_version"],
    buckets=CONFIDENCE_BUCKETS,
)

BULK_FROM = 8  # texts per request from which the bulk update is cheaper (measured: BENCHMARKS.md, "Label metrics")
_children: dict[tuple[str, str, tuple[str, ...]], tuple[list, object]] = {}


def _series(model: str, version: str, labels: Sequence[str]) -> tuple[list, object]:
    """The label children for one (model, version, labels), looked up once: ``labels()`` takes a lock each call."""
    key = (model, version, tuple(labels))
    found = _children.get(key)
    if found is None:
        found = ([ANSWERS.labels(model, version, label) for label in labels], CONFIDENCE.labels(model, version))
        _children[key] = found
    return found


series = _series  # for callers that know each row's top label and score already (transformer/fastpath.py)


def observe_many(histogram, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every ``v``, in one update per bucket instead of one per value.

    prometheus_client keeps non-cumulative bucket values (``_buckets``) and a sum
    (``_sum``) per child; observe() adds 1 to the first bucket whose bound is >= the
    value. This does the same for a whole array (tests/unit/runtime/test_answers.py checks the
    result equals observe() one by one).
    """
    if not len(values):
        return
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for index in np.flatnonzero(counts):
        histogram._buckets[index].inc(int(counts[index]))
    histogram._sum.inc(float(values.sum()))


def observe(model: str, version: str, labels: Sequence[str], probs: np.ndarray) -> None:
    """Count ``probs`` (one row per text answered, columns in ``labels`` order) under ``version``."""
    if not len(probs):
        return
    best = probs.argmax(axis=1)
    label_series, confidence = _series(model, version, labels)
    top = probs[np.arange(len(probs)), best]
    if len(probs) <= BULK_FROM:  # a few texts: plain increments are cheaper than numpy's per-call overhead
        for index, score in zip(best.tolist(), top.tolist()):
            label_series[index].inc()
            confidence.observe(score)
        return
    counts = np.bincount(best, minlength=len(labels))
    for index in np.flatnonzero(counts):
        label_series[index].inc(int(counts[index]))
    observe_many(confidence, top.astype(np.float64))
