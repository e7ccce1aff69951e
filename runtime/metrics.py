"""Metrics both services export, and the ``/metrics`` endpoint that aggregates worker processes.

Next to KServe's own histograms (``request_preprocess_seconds``,
``request_predict_seconds``, ``request_postprocess_seconds``, by ``model_name``),
every REST request to a model route is counted by status and timed end to end here,
and every error a client sees is counted by ``error_type``. The Grafana dashboard and
the alert rules in the chart use these names; tests/integration/test_metrics.py
checks that every name they use is exported.
"""

from __future__ import annotations

from bisect import bisect_left

from fastapi import Request, Response
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, exposition, multiprocess

from runtime import multiproc

# Finer around the 200 ms latency objective, so p99 against it is not a bucket guess.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "text_classifier_requests_total",
    "REST inference requests, by model and HTTP status (health, metadata and /metrics are not counted)",
    ["model_name", "status"],
)
REQUEST_SECONDS = Histogram(
    "text_classifier_request_duration_seconds",
    "REST inference requests from first byte in to last byte out, by model",
    ["model_name"],
    buckets=LATENCY_BUCKETS,
)
ERRORS_TOTAL = Counter(
    "text_classifier_errors_total",
    "Error answers by error_type (the table in contract/errors.py) and model ('' when no model was named)",
    ["model_name", "error_type"],
)
# One series per serving pod (its value is 1): count it for replicas, read model_version
# from it to tell a canary's revision from the primary's. "max" keeps one sample per pod
# however many worker processes it has. Which service a pod is comes from the scrape
# (the PodMonitor copies KServe's `component` pod label), not from a label here.
INFO = Gauge(
    "text_classifier_info",
    "1 per serving pod, labelled with what it serves",
    ["model_name", "model_version"],
    multiprocess_mode="max",
)


_children: dict = {}


def child(metric, *values: str):
    """``metric.labels(*values)``, looked up once per label values.

    ``labels()`` validates, builds a tuple of strings and takes the metric's lock on
    every call; the hot path counts several series per request (a cache hit is the
    service's cheapest answer: BENCHMARKS.md, "Tracing and Redis Cluster"). Children
    are never removed from a metric here, so a cached one stays the registered one.
    """
    found = _children.get((metric, values))
    if found is None:
        found = _children[(metric, values)] = metric.labels(*values)
    return found


def observe(histogram, amount: float) -> None:
    """``histogram.observe(amount)`` for a child from ``child``, without its per-call checks.

    prometheus_client's ``observe`` checks that the metric is a labelled child (``child``'s are),
    then walks the bounds for the first at or above ``amount``; a cache hit observes five
    histograms (BENCHMARKS.md, "Hit path, third pass"). Same updates: the sum, then that one
    (non-cumulative) bucket, found by bisection (as runtime/answers.py ``observe_many`` does).
    tests/unit/runtime/test_metrics_fast.py checks the result equals ``observe``'s.
    """
    histogram._sum.inc(amount)
    if amount == amount:  # NaN: observe() counts it in no bucket (bisection would put it in the first)
        histogram._buckets[bisect_left(histogram._upper_bounds, amount)].inc(1)


def inc(counter, amount: float = 1) -> None:
    """``counter.inc(amount)`` for a child from ``child``, without its per-call checks (non-negative amounts)."""
    counter._value.inc(amount)


def registry() -> CollectorRegistry:
    """Every process's values in multiprocess mode, else this process's default registry."""
    if not multiproc.enabled():
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)
    return merged


async def metrics_handler(request: Request) -> Response:
    """``GET /metrics``: KServe's handler, reading the registry that sees every worker."""
    encoder, content_type = exposition.choose_encoder(request.headers.get("accept"))
    return Response(content=encoder(registry()), headers={"content-type": content_type})
