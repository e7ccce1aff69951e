"""The cache-hit fast path: a V1 or V2 REST predict request whose every text is cached, answered before FastAPI.

At the seeds' 95% cache rate, hits cost the transformer about as many cores as the
model's misses, and most of a hit's CPU was KServe's FastAPI routing, pydantic's V2
models, the ``InferRequest``/``InferResponse`` round trip and the response encoding,
not the Redis lookup (BENCHMARKS.md, "Cache-hit fast path"). This ASGI middleware sits
innermost of ours (the access log, tracing, rate limit and body limit still wrap it)
and answers a request itself only when all of these hold:

- ``POST /v1/models/<m>:predict`` or ``POST /v2/models/<m>/infer`` for the served,
  ready transformer, whose labels and version are already known;
- a declared ``content-length`` and a JSON body (no content type, or
  ``application/json``), no CloudEvent or binary-extension headers;
- the plainest request shape (V1 ``{"instances": [str, ...]}``, V2 one BYTES input of
  strings, an optional string ``id``), no non-empty ``parameters``, within the limits;
- every distinct text found in Redis (one MGET, the cache's own breaker and deadline).

Anything else, a miss included, goes the full way with the body replayed; a lookup
already made is handed over (``prefetched``) so a miss costs no second MGET. The answer
is the full path's byte for byte (tests/integration/test_fastpath.py), assembled from
per-row JSON fragments kept by cached value, and it counts what the full path counts:
KServe's preprocess/predict/postprocess histograms, cache lookups and the answer
metrics. With tracing on, the same spans as the full path's (``parse``, ``cache lookup``); a
request handed on shows them too, before the full path's own. ``--fast_path false`` turns it off.
"""

from __future__ import annotations

import contextvars
import json
import time

import numpy as np
import orjson

from contract import schema
from runtime import answers, tracing
from runtime.accesslog import new_request_id
from runtime.kserve.codec import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME
from runtime.metrics import child, counted, observed, write
from transformer.metrics import CACHE_LOOKUPS

JSON = b"application/json"
MAX_FRAGMENTS = 65_536  # distinct cached rows whose JSON is kept (~300 bytes each: 20 MB at most)

# (keys, raw values) of a lookup the fast path made before handing a request on: the full path's
# _through_cache takes it instead of asking Redis again (same task, so same context).
_PREFETCHED: contextvars.ContextVar[tuple[list[str], list] | None] = contextvars.ContextVar("prefetched",
                                                                                             default=None)


def prefetched(keys: list[str]) -> list | None:
    """The raw values of ``keys`` if this request's fast path already looked exactly these up, else None."""
    found = _PREFETCHED.get()
    if found is None or found[0] != keys:
        return None
    _PREFETCHED.set(None)  # once: a second lookup in the same request asks Redis
    return found[1]


# A scope key: the request was tried below ASGI (transformer/fasthttp.py) and handed on; not again here.
HANDED_ON = "text_classifier.fast_path_tried"


class Pass(Exception):
    """Not for the fast path: the full path answers."""


def _route(path: str) -> tuple[str, bool] | None:
    """(model name, is V2) for the two predict routes, else None."""
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        name = path[11:-8]
        return (name, False) if name and "/" not in name and ":" not in name else None
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        name = path[11:-6]
        return (name, True) if name and "/" not in name and ":" not in name else None
    return None


def _strings(items) -> list[str]:
    if type(items) is not list or not items or any(type(item) is not str for item in items):
        raise Pass
    return items


def v1_texts(body) -> list[str]:
    if type(body) is not dict or body.keys() - {"instances", "parameters"} or body.get("parameters"):
        raise Pass
    return _strings(body.get("instances"))


def v2_texts(body) -> tuple[list[str], str | None]:
    """The texts and the request's id, for the plainest V2 request only."""
    if type(body) is not dict or body.keys() - {"id", "inputs", "parameters"} or body.get("parameters"):
        raise Pass
    request_id, inputs = body.get("id"), body.get("inputs")
    if (request_id is not None and type(request_id) is not str) or type(inputs) is not list or len(inputs) != 1:
        raise Pass
    tensor = inputs[0]
    if (type(tensor) is not dict or tensor.keys() - {"name", "datatype", "shape", "data", "parameters"}
            or tensor.get("parameters") or type(tensor.get("name")) is not str or tensor.get("datatype") != "BYTES"):
        raise Pass
    shape, data = tensor.get("shape"), tensor.get("data")
    if type(shape) is not list or not all(type(d) is int for d in shape) or shape not in ([len(data or ())],
                                                                                         [len(data or ()), 1]):
        raise Pass
    if type(data) is list and data and all(type(row) is list and len(row) == 1 for row in data):
        data = [row[0] for row in data]  # [n, 1] as nested arrays, as contract.schema.v2_json_items flattens it
    return _strings(data), request_id


class Fragments:
    """The JSON of one cached row in each shape it is answered in, by (labels, version, stored bytes)."""

    def __init__(self):
        self._of: dict[bytes, tuple] = {}
        self._for: tuple | None = None

    def of(self, value: bytes, labels: list[str], version: str) -> tuple:
        """(V1 prediction, V2 label, V2 score, V2 scores row; top label's index, its score) of a stored row."""
        if self._for != (tuple(labels), version):  # another model version: its rows are other answers
            self._of, self._for = {}, (tuple(labels), version)
        found = self._of.get(value)
        if found is None:
            if len(self._of) >= MAX_FRAGMENTS:
                self._of.clear()
            row = np.frombuffer(value, dtype=np.float32)
            best = int(row.argmax())
            found = self._of[value] = (
                orjson.dumps(schema.v1_response(row[None, :], labels)["predictions"][0]),
                orjson.dumps(labels[best]), orjson.dumps(float(row[best])),
                b",".join(orjson.dumps(score) for score in row.tolist()), best, float(row[best]))
        return found


class FastPath:
    """ASGI middleware: full cache hits on the predict routes answered here (see the module docstring)."""

    def __init__(self, app, registry, max_body_bytes: int):
        self.app = app
        self.registry = registry
        self.max_body_bytes = max_body_bytes
        self.fragments = Fragments()

    def model_for(self, scope):
        """(model, is V2) when ``scope`` is a POST to a predict route of the served, ready model, else None."""
        route = _route(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        model = self.registry.get_model(route[0]) if route else None
        if model is None or not model.ready or model.labels is None or getattr(model, "enable_latency_logging", False):
            return None
        return model, route[1]

    def plain(self, headers: dict, max_bytes: int | None = None) -> bool:
        """A declared length within the limit, a JSON body, no CloudEvent or binary-extension headers."""
        length = headers.get(b"content-length", b"")
        return not (not length.isdigit() or int(length) > (max_bytes or self.max_body_bytes)
                    or headers.get(b"content-type", JSON) != JSON
                    or b"inference-header-content-length" in headers
                    or b"\nce-" in b"\n" + b"\n".join(headers))  # a CloudEvent header (names hold no newline)

    async def __call__(self, scope, receive, send):
        # HANDED_ON: transformer/fasthttp.py tried this request below ASGI already and handed it on
        found = None if HANDED_ON in scope else self.model_for(scope)
        if found is None:
            return await self.app(scope, receive, send)
        model, v2 = found
        headers = dict(scope["headers"])
        if not self.plain(headers):
            return await self.app(scope, receive, send)
        received, body = [], b""
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":  # the client left: the full path sees it as it would have
                return await self.app(scope, _replay(received, receive), send)
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            answer = await self._answer(model, v2, body, headers)
        except Pass:
            return await self.app(scope, _replay(received, receive), send)
        await send(answer[0])
        await send(answer[1])

    async def _answer(self, model, v2: bool, body: bytes, headers: dict):
        """The two ASGI messages of the answer; ``Pass`` (after handing over a lookup) for the full path."""
        started = time.perf_counter()
        texts = None
        with tracing.span("parse"):  # a request handed on leaves no error on the span: Pass is raised after it
            try:
                parsed = orjson.loads(body)
                texts, v2_id = v2_texts(parsed) if v2 else (v1_texts(parsed), None)
            except (orjson.JSONDecodeError, Pass):
                pass
        limits = model.limits
        # max(map(...)), a loop: not a generator, whose frame costs more than the check (texts is never empty)
        if texts is None or len(texts) > limits.max_texts or max(map(len, texts)) > limits.max_chars:
            raise Pass
        parsed_at = time.perf_counter()
        version, labels = model.read_version, model.labels
        distinct = list(dict.fromkeys(texts))
        key = model.keys.key
        keys = [key(model.name, version, text) for text in distinct]
        with tracing.span("cache lookup", {"texts": len(keys)}) as lookup:
            values = await model.cache.get_raw_many(keys)
            width = 4 * len(labels)
            hits = 0
            for value in values:
                if value is not None and len(value) == width:
                    hits += 1
            tracing.set_attributes(lookup, {"cache.hits": hits})
        if hits < len(keys):
            _PREFETCHED.set((keys, values))
            raise Pass
        looked_up = time.perf_counter()
        request_id = headers.get(b"x-request-id", b"").decode("latin-1") or new_request_id()
        of_text = dict(zip(distinct, values))
        rows = [of_text[text] for text in texts]
        # the hit's metric updates, written together at the end (runtime/metrics.py ``write``)
        updates = [counted(child(CACHE_LOOKUPS, model.name, "hit"), len(keys))]
        fragments = [self.fragments.of(row, labels, version) for row in rows]
        if len(rows) <= answers.BULK_FROM:  # answers.observe's own rule, with the argmax kept per row
            label_series, confidence = answers.series(model.name, version, labels)
            for fragment in fragments:
                updates.append(counted(label_series[fragment[4]]))
                updates += observed(confidence, fragment[5])
        else:
            answers.observe(model.name, version, labels, np.frombuffer(b"".join(rows), np.float32).reshape(len(rows), -1))
        content = _v2_body(model.name, version, labels, v2_id, fragments) if v2 else \
            b'{"predictions":[' + b",".join(f[0] for f in fragments) + b"]}"
        ours = [(b"x-cache", b"hit"), (b"x-request-id", request_id.encode("latin-1")),
                (b"x-cache-hits", str(len(keys)).encode())] if model.cache_headers else \
            [(b"x-request-id", request_id.encode("latin-1"))]  # --cache_headers off: the full path's _answer_headers
        typed = [(b"content-length", str(len(content)).encode()), (b"content-type", JSON)]
        done = time.perf_counter()
        name = model.name
        updates += observed(child(PRE_HIST_TIME, name), parsed_at - started)
        updates += observed(child(PREDICT_HIST_TIME, name), looked_up - parsed_at)
        updates += observed(child(POST_HIST_TIME, name), done - looked_up)
        write(updates)
        # KServe's V2 route puts the model's headers after the response's own; V1 before them
        return ({"type": "http.response.start", "status": 200, "headers": typed + ours if v2 else ours + typed},
                {"type": "http.response.body", "body": content})


def _v2_body(name: str, version: str, labels: list[str], request_id: str | None, fragments: list) -> bytes:
    n = str(len(fragments)).encode()
    return b"".join((
        b'{"model_name":', orjson.dumps(name), b',"model_version":', orjson.dumps(version),
        b',"id":', orjson.dumps(request_id or new_request_id()), b',"parameters":null,"outputs":[',
        b'{"name":"label","shape":[', n, b'],"datatype":"BYTES","parameters":null,"data":[',
        b",".join(f[1] for f in fragments), b"]},",
        b'{"name":"score","shape":[', n, b'],"datatype":"FP32","parameters":null,"data":[',
        b",".join(f[2] for f in fragments), b"]},",
        b'{"name":"scores","shape":[', n, b",", str(len(labels)).encode(), b'],"datatype":"FP32","parameters":',
        orjson.dumps({"labels": json.dumps(list(labels))}), b',"data":[', b",".join(f[3] for f in fragments),
        b"]}]}",
    ))


def _replay(received: list, receive):
    """``receive`` that gives the messages already read first, then the client's."""
    pending = list(received)

    async def replayed():
        return pending.pop(0) if pending else await receive()

    return replayed
