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


def observed(histogram, amount: float) -> list:
    """The value updates of ``histogram.observe(amount)``, for a child from ``child``, for ``write``.

    prometheus_client's ``observe`` checks that the metric is a labelled child (``child``'s are),
    then walks the bounds for the first at or above ``amount``; a cache hit observes five
    histograms (BENCHMARKS.md, "Hit path, third pass"). Same updates: the sum, then that one
    (non-cumulative) bucket, found by bisection (as runtime/answers.py ``observe_many`` does).
    tests/unit/runtime/test_metrics_fast.py checks the result equals ``observe``'s.
    """
    if amount != amount:  # NaN: observe() counts it in no bucket (bisection would put it in the first)
        return [(histogram._sum, amount)]
    return [(histogram._sum, amount), (histogram._buckets[bisect_left(histogram._upper_bounds, amount)], 1)]


def counted(counter, amount: float = 1) -> tuple:
    """The value update of ``counter.inc(amount)`` (non-negative), for a child from ``child``, for ``write``."""
    return counter._value, amount


def _each(updates) -> None:
    for value, amount in updates:
        value.inc(amount)


def _mmap_writer(value_class):
    """``write`` for prometheus_client's multiprocess values (values.py ``MultiProcessValue``), or None.

    Each of its ``inc`` takes the module's one lock, asks ``os.getpid()`` whether the process
    forked since (then it reopens its files) and writes the value's 16 bytes through
    ``MmapedDict.write_value``; a cache hit makes 13 such updates (BENCHMARKS.md, "Hit path,
    fourth pass"). This takes the same lock once for a request's updates and asks the pid once
    (a fork since: each update goes through ``inc``, which reopens), and writes the same bytes
    at the same place (``mmap_dict._pack_two_doubles``: one slice assignment, not ``pack_into``).
    The lock and the pid are the closure's of ``MultiProcessValue`` (prometheus_client 0.2x);
    if they are not found, None: ``inc`` per update.
    """
    try:
        from prometheus_client import mmap_dict

        cells = {name: cell.cell_contents for function in (value_class.inc,
                                                           value_class._MmapedValue__check_for_pid_change)
                 for name, cell in zip(function.__code__.co_freevars, function.__closure__ or ())}
        lock, pid, process_identifier = cells["lock"], cells["pid"], cells["process_identifier"]
        pack = mmap_dict._pack_two_doubles_func
    except (AttributeError, KeyError, TypeError, ImportError):
        return None

    def write(updates) -> None:
        if pid["value"] != process_identifier():  # forked: inc reopens this process's own files
            return _each(updates)
        with lock:
            for value, amount in updates:
                value._value = total = value._value + amount
                value._timestamp = 0.0
                file = value._file
                position = file._positions.get(value._key)
                if position is None:  # its first write in this file: write_value places it
                    file.write_value(value._key, total, 0.0)
                else:
                    file._m[position:position + 16] = pack(total, 0.0)

    return write


def _writer():
    from prometheus_client import values

    if getattr(values.ValueClass, "_multiprocess", False):
        return _mmap_writer(values.ValueClass) or _each
    return _each


# write(updates): apply ``(value, amount)`` updates (from ``counted``/``observed``), each value += amount
write = _writer()


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
