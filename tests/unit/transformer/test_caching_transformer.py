"""CachingTransformer.score against an in-memory cache and a fake predictor client: the cache in front of the
model (hits, misses, duplicates), version pinning, answer variants and coalescing, without Redis or a server.
The same paths run for real, Redis and predictor processes included, in tests/integration/test_transformer.py."""

import asyncio

import numpy as np
import pytest

from contract.errors import ServiceError
from contract.parameters import Options
from contract.schema import Limits
from contract.scores import Scores
from transformer.cache import encode
from transformer.model import CachingTransformer

LABELS = ["NEGATIVE", "POSITIVE"]
LIMITS = Limits(max_texts=100, max_chars=1000, max_body_bytes=1 << 20)


class MemoryCache:
    """TextCache's interface over a dict, storing what TextCache stores (float32 bytes, or bytes as they are)."""

    ttl_s = 60

    class breaker:
        state = 0

    def __init__(self):
        self.values: dict[str, bytes] = {}

    async def get_raw_many(self, keys):
        return [self.values.get(key) for key in keys]

    async def set_many(self, entries):
        self.values.update({key: encode(value) for key, value in entries.items()})

    async def close(self):
        pass


class FakePredictor:
    """Scores a text as [len % 2, 1 - len % 2]; records every call; may hold calls until released."""

    def __init__(self, version="v1", timeout_s=15, published_deadline_s=None):
        self.version = version
        self.timeout_s = timeout_s  # the transformer's deadline of a call (PredictorClient.timeout_s)
        self.published_deadline_s = published_deadline_s  # the predictor's own, as its metadata says
        self.calls: list[tuple[list[str], dict | None]] = []
        self.gate: asyncio.Event | None = None

    async def infer(self, model_name, texts, request_id, parameters=None, client=None):
        self.calls.append((list(texts), parameters))
        if self.gate is not None:
            await self.gate.wait()
        probs = np.array([[len(t) % 2, 1 - len(t) % 2] for t in texts], dtype=np.float32).reshape(-1, 2)
        windows = [1 + len(t) // 10 for t in texts] if (parameters or {}).get("truncation") == "chunks" else None
        return Scores(probs, LABELS, self.version, windows=windows), {"x-inference-time": "1.00"}

    async def deadline_s(self, model_name):
        return self.published_deadline_s

    async def close(self):
        pass


def transformer(predictor, cache=None, pinned=None, cache_headers=True):
    return CachingTransformer("sentiment", predictor, cache or MemoryCache(), LIMITS, pinned_version=pinned,
                              cache_headers=cache_headers)


def scored_calls(predictor):
    return [texts for texts, _ in predictor.calls if texts]  # the empty call learns labels and version


async def test_a_second_request_is_answered_from_the_cache():
    predictor = FakePredictor()
    model = transformer(predictor)
    first = await model.score(["good", "bad"], {}, Options())
    second = await model.score(["good", "bad"], {}, Options())
    assert scored_calls(predictor) == [["good", "bad"]]
    assert first.measured["x-cache"] == "miss" and second.measured["x-cache"] == "hit"
    assert second.measured["x-cache-hits"] == "2" and "x-inference-time" not in second.measured
    np.testing.assert_array_equal(first.probs, second.probs)


async def test_duplicates_are_computed_once_and_a_partial_hit_sends_only_the_misses():
    predictor = FakePredictor()
    model = transformer(predictor)
    await model.score(["same", "same", "other"], {}, Options())
    partial = await model.score(["same", "new one"], {}, Options())
    assert scored_calls(predictor) == [["same", "other"], ["new one"]]
    assert partial.measured["x-cache"] == "partial"
    assert partial.probs.shape == (2, 2)


async def test_answers_are_written_under_the_version_that_computed_them():
    """A canary's transformer pins its model's version: an answer the primary computed is never read as its own."""
    predictor = FakePredictor(version="primary")
    model = transformer(predictor, pinned="canary")
    await model.score(["text"], {}, Options())
    await model.score(["text"], {}, Options())
    assert scored_calls(predictor) == [["text"], ["text"]]  # written under "primary", read under "canary"
    predictor.version = "canary"
    await model.score(["text"], {}, Options())
    again = await model.score(["text"], {}, Options())
    assert again.measured["x-cache"] == "hit" and again.model_version == "canary"


async def test_a_new_predictor_version_is_learned_and_read_under():
    predictor = FakePredictor(version="v1")
    model = transformer(predictor)
    await model.score(["text"], {}, Options())
    predictor.version = "v2"
    await model.score(["fresh"], {}, Options())  # a miss: the predictor answers as v2
    answer = await model.score(["text"], {}, Options())
    assert answer.measured["x-cache"] == "miss" and answer.model_version == "v2"


async def test_each_truncation_is_cached_apart_from_the_plain_prediction():
    predictor = FakePredictor()
    model = transformer(predictor)
    await model.score(["a long text"], {}, Options())
    chunks = await model.score(["a long text"], {}, Options(truncation="chunks"))
    cached = await model.score(["a long text"], {}, Options(truncation="chunks"))
    assert [p for t, p in predictor.calls if t] == [{"truncation": "head"}, {"truncation": "chunks"}]
    assert chunks.windows == cached.windows == [2] and cached.measured["x-cache"] == "hit"


async def test_concurrent_requests_for_the_same_texts_call_the_predictor_once():
    predictor = FakePredictor()
    model = transformer(predictor)
    await model.model_info("learn")  # the first empty call, outside the gate
    predictor.gate = asyncio.Event()
    both = asyncio.gather(*(model.score(["shared"], {}, Options()) for _ in range(2)))
    while not scored_calls(predictor):
        await asyncio.sleep(0)
    predictor.gate.set()
    first, second = await both
    assert scored_calls(predictor) == [["shared"]]
    np.testing.assert_array_equal(first.probs, second.probs)


async def test_explanations_turned_off_are_refused_before_any_call():
    predictor = FakePredictor()
    model = CachingTransformer("sentiment", predictor, MemoryCache(), LIMITS, pinned_version=None, explain=False)
    with pytest.raises(ServiceError, match="turned off") as refused:
        await model.score(["text"], {}, Options(explain=True))
    assert refused.value.error_type == "not_implemented" and scored_calls(predictor) == []


@pytest.mark.parametrize("published", [15, 20])
async def test_a_transformer_whose_deadline_is_not_the_later_refuses_to_serve(published):
    predictor = FakePredictor(timeout_s=15, published_deadline_s=published)
    model = transformer(predictor)
    model.load()
    for _ in range(2):  # refused at first contact and after it, without calling the predictor to score
        with pytest.raises(ServiceError) as refused:
            await model.score(["good"], {}, Options())
        assert refused.value.error_type == "model_not_ready"
        assert "--predictor_request_timeout_seconds (15 s) must exceed" in str(refused.value)
    assert not model.ready and predictor.calls == []


@pytest.mark.parametrize("published", [10, None])  # None: not published (gRPC, an older predictor): not checked
async def test_a_transformer_whose_deadline_is_the_later_serves(published):
    predictor = FakePredictor(timeout_s=15, published_deadline_s=published)
    model = transformer(predictor)
    model.load()
    assert (await model.score(["good"], {}, Options())).probs.shape == (1, 2)
    assert model.ready and model.refusal is None


async def test_without_cache_headers_an_answer_tells_no_hit_from_a_miss():
    """--cache_headers off (the default): no x-cache, x-cache-hits or predictor timings, which are present only
    when texts were computed; x-request-id stays."""
    model = transformer(FakePredictor(), cache_headers=False)
    first = await model.score(["a", "bb"], {"x-request-id": "r1"}, Options())
    second = await model.score(["a", "bb"], {"x-request-id": "r2"}, Options())
    assert first.measured == {"x-request-id": "r1"} and second.measured == {"x-request-id": "r2"}


async def test_keys_are_keyed_and_carry_the_release():
    from contract.cachekey import CacheKeys

    cache = MemoryCache()
    model = CachingTransformer("sentiment", FakePredictor(), cache, LIMITS, pinned_version=None,
                               keys=CacheKeys(b"s3cret", "prod"))
    await model.score(["a text"], {}, Options())
    assert list(cache.values) == [CacheKeys(b"s3cret", "prod").key("sentiment", "v1", "a text")]
    assert next(iter(cache.values)).startswith("tc:prod:sentiment:v1:")
