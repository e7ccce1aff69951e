"""One access-log line and the request metrics for every REST inference request.

Pure ASGI middleware, the outermost of ours, so it also sees the answers of the body
limit and of the error handlers. Only inference routes (``:predict``, ``:explain``,
``/infer``) are logged and counted: health checks and scrapes would drown them.
Every request leaves with an ``x-request-id``: the client's, else one made here and
put on the request too, so the model code, the predictor it calls and this line all
share it. The line holds ids, status, latency and the cache outcome, never a text.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from contract.metrics import REQUEST_SECONDS, REQUESTS

logger = logging.getLogger("contract.access")

INFERENCE_ROUTE = re.compile(r"^/v[12]/models/(?P<model>[^/:]+)(?::(?:predict|explain)|(?:/versions/[^/]+)?/infer)$")
REQUEST_ID = b"x-request-id"


class AccessLog:
    def __init__(self, app, model_version: Callable[[str], str | None] = lambda name: None):
        self.app = app
        self.model_version = model_version  # the version a model serves now, for the log line

    async def __call__(self, scope, receive, send):
        route = INFERENCE_ROUTE.match(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        model = route["model"]
        request_id = dict(scope["headers"]).get(REQUEST_ID, b"").decode("latin-1")
        if not request_id:
            request_id = str(uuid.uuid4())
            scope = {**scope, "headers": [*scope["headers"], (REQUEST_ID, request_id.encode())]}
        answer = {"status": 500, "cache": None}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                answer["status"] = message["status"]
                answer["cache"] = headers.get(b"x-cache", b"").decode("latin-1") or None
                if REQUEST_ID not in headers:
                    message = {**message, "headers": [*message.get("headers", []), (REQUEST_ID, request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            REQUESTS.labels(model, str(answer["status"])).inc()
            REQUEST_SECONDS.labels(model).observe(elapsed)
            version = self._version(model)
            logger.info(
                "%s %s %d %.1f ms model=%s model_version=%s cache=%s request_id=%s",
                scope["method"], scope["path"], answer["status"], elapsed * 1000, model, version, answer["cache"] or "-",
                request_id,
                extra={"request_id": request_id, "model": model, "model_version": version, "method": scope["method"],
                       "path": scope["path"], "status": answer["status"], "latency_ms": round(elapsed * 1000, 2),
                       "cache": answer["cache"]},
            )

    def _version(self, model: str) -> str | None:
        try:
            return self.model_version(model)
        except Exception:  # an unknown model (404) has no version; the line is still written
            return None
