"""Response headers that tell a client where its request's time went, named as text-embeddings-inference names them.

TEI (router/src/lib.rs) answers with ``x-total-time``, ``x-tokenization-time``,
``x-queue-time``, ``x-inference-time``, ``x-compute-tokens`` and
``x-compute-characters``. Both services send the same names, on REST as headers and
on gRPC as initial metadata, in milliseconds with two decimals (TEI sends whole
milliseconds, which rounds a cache hit to 0):

==================== ==========================================================
x-total-time         time in this server, first body byte in to response out
x-queue-time         predictor: submit to the start of the first batch carrying
                     the request's texts
x-tokenization-time  predictor: tokenizing the batches that carried its texts
x-inference-time     predictor: those batches' forward passes (summed)
x-compute-tokens     tokens the model computed for this request (after
                     truncation, special tokens included)
x-compute-characters characters of the texts the model computed
x-cache-hits         transformer: distinct texts answered from Redis
==================== ==========================================================

Through the transformer, the predictor's figures describe the one predictor call
this request made for its misses, and are absent when it made none (every text a hit,
or coalesced onto another request's call): a cache hit answers with ``x-cache-hits``
and ``x-total-time`` only, the cheapest answer the service gives.
"""

from __future__ import annotations

from collections.abc import Mapping

TOTAL_TIME = "x-total-time"
QUEUE_TIME = "x-queue-time"
TOKENIZATION_TIME = "x-tokenization-time"
INFERENCE_TIME = "x-inference-time"
COMPUTE_TOKENS = "x-compute-tokens"
COMPUTE_CHARACTERS = "x-compute-characters"
CACHE_HITS = "x-cache-hits"
# What the transformer passes on from the predictor's answer.
PREDICTOR_HEADERS = (QUEUE_TIME, TOKENIZATION_TIME, INFERENCE_TIME, COMPUTE_TOKENS, COMPUTE_CHARACTERS)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def predictor_headers(stats, characters: int) -> dict[str, str]:
    """The predictor's headers from the batcher's ``RequestStats``."""
    return {
        QUEUE_TIME: ms(stats.queue_s),
        TOKENIZATION_TIME: ms(stats.tokenization_s),
        INFERENCE_TIME: ms(stats.inference_s),
        COMPUTE_TOKENS: str(stats.tokens),
        COMPUTE_CHARACTERS: str(characters),
    }


def passed_on(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The predictor's timing headers out of its answer, for the transformer's own answer.

    ``headers`` is aiohttp's case-insensitive mapping (REST) or gRPC's initial metadata, whose
    keys are lower case by the gRPC spec: looked up by name, not by lowering every header."""
    if not headers:
        return {}
    return {name: str(value) for name in PREDICTOR_HEADERS if (value := headers.get(name)) is not None}
