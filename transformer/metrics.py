"""The transformer's Prometheus metrics, served on /metrics next to KServe's latency histograms.

The shared request, error and info metrics are in runtime/metrics.py.
"""

from prometheus_client import Counter, Gauge

CACHE_LOOKUPS = Counter(
    "transformer_cache_lookups_total", "Distinct texts looked up in the cache, by outcome", ["model_name", "outcome"]
)
CACHE_ERRORS = Counter(
    "transformer_cache_errors_total", "Cache operations that failed or timed out (the request still got an answer)",
    ["model_name", "operation"],
)
CACHE_SKIPPED = Counter(
    "transformer_cache_skipped_total", "Cache operations skipped because the circuit was open", ["model_name"]
)
CIRCUIT_STATE = Gauge(
    "transformer_cache_circuit_state", "Cache circuit breaker: 0 closed, 1 half-open, 2 open", ["model_name"],
    multiprocess_mode="max",  # each worker process has its own breaker: the pod reports the worst
)
PREDICTOR_TEXTS = Counter(
    "transformer_predictor_texts_total", "Texts sent to the predictor (cache misses, coalesced)", ["model_name"]
)
COALESCED = Counter(
    "transformer_coalesced_texts_total", "Texts answered by another request's in-flight predictor call", ["model_name"]
)
