"""The predictor's Prometheus metrics: batching, queueing, tokens and model time.

Served on /metrics next to KServe's latency histograms and the shared metrics of
runtime/metrics.py. There is no ``model_name`` label here: one predictor process
serves one model, and on a cluster the scrape adds the InferenceService and revision
(the chart's PodMonitor). Observe through the functions below, not the objects, so
a call site reads as what happened.
"""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from runtime.metrics import child

BATCH_SIZE = Histogram(
    "predictor_batch_size",
    "Texts per model call taken from the queue (the dynamic batcher's batch size)",
    buckets=(1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256),
)
QUEUE_TEXTS = Gauge(
    "predictor_queue_texts",
    "Texts waiting for a model call; compare with predictor_queue_capacity_texts (beyond it: 429 overloaded)",
    multiprocess_mode="livesum",  # each worker has its own queue: the pod's backlog is their sum
)
QUEUE_CAPACITY = Gauge(
    "predictor_queue_capacity_texts",
    "--max_queue_texts: texts allowed to wait per worker process",
    multiprocess_mode="livesum",
)
TOKENS_PER_TEXT = Histogram(
    "predictor_tokens_per_text",
    "Tokens per text after truncation to --max_length (special tokens included, padding excluded)",
    buckets=(8, 16, 32, 64, 96, 128, 192, 256, 384, 512),
)
INFERENCE_SECONDS = Histogram(
    "predictor_inference_seconds",
    "Seconds of one model call on the inference thread (tokenize + forward passes), by backend",
    ["backend"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0),
)


def observe_batch(texts: int) -> None:
    """One model call of ``texts`` texts left the queue (predictor/batcher.py, per batch)."""
    BATCH_SIZE.observe(texts)


def set_queue(texts: int, capacity: int) -> None:
    """``texts`` are now waiting, of ``capacity`` allowed (predictor/batcher.py, on every change)."""
    QUEUE_TEXTS.set(texts)
    QUEUE_CAPACITY.set(capacity)


def observe_tokens(token_counts) -> None:
    """Token counts of one batch's texts, after truncation: ``[len(ids) for ids in encoded["input_ids"]]``."""
    for count in token_counts:
        TOKENS_PER_TEXT.observe(count)


def observe_inference(backend: str, seconds: float) -> None:
    """One model call (``classify`` of a whole batch) took ``seconds`` on ``backend`` (--backend's value)."""
    child(INFERENCE_SECONDS, backend).observe(seconds)
