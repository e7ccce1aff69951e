"""Per-client rate limiting at the transformer: a token bucket per client, 429 ``rate_limited`` with ``Retry-After``.

Off unless ``--rate_limit_rps`` is set. A client is the value of the header named by
``--rate_limit_key`` (e.g. ``x-api-key``, the same name as gRPC metadata), or its IP
address when the header is absent or no header is configured. Each client may send
``--rate_limit_burst`` requests at once and ``--rate_limit_rps`` per second after that.

Only inference calls are limited (REST ``:predict``/``/infer``, gRPC ``ModelInfer``):
health probes and scrapes never are. The check runs before the body is read, so a
client over its limit costs a dictionary lookup. Buckets live in the worker process:
with ``--workers N`` a client gets up to N times the rate, spread over the workers.
Clients are kept as hashes (no API key is held in memory as sent) in a bounded LRU of
``MAX_CLIENTS``: a client evicted by that many newer ones starts again with a full
bucket, which is the price of a memory bound that clients cannot push.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from contract.errors import ErrorType, ServiceError
from runtime.accesslog import INFERENCE_ROUTE
from runtime.grpc import ModelInferInterceptor
from runtime.rest import send_error

MAX_CLIENTS = 100_000  # ~100 bytes each: 10 MB at most


class RateLimiter:
    """Token buckets by client: ``burst`` tokens, refilled at ``rps`` per second; a request takes one."""

    def __init__(self, rps: float, burst: int = 0, key_header: str = "", max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic):
        if rps <= 0:
            raise ValueError("rps must be positive (a limiter is only built when rate limiting is on)")
        self.rps = rps
        self.burst = burst if burst > 0 else max(1, math.ceil(rps))
        self.key_header = key_header.strip().lower()
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # client -> (tokens, updated at)

    def client(self, header_value: str | None, peer_ip: str | None) -> str:
        return f"key:{header_value}" if self.key_header and header_value else f"ip:{peer_ip or '-'}"

    def wait_s(self, client: str) -> float:
        """0 when ``client`` may go ahead now (a token is taken), else the seconds until it may."""
        digest = hashlib.blake2b(client.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        now = self._clock()
        tokens, updated = self._buckets.pop(digest, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.rps)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rps
        self._buckets[digest] = (tokens, now)  # (re)inserted last: the most recently seen
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def error(self, wait: float) -> tuple[ServiceError, str]:
        """The error to answer with and the ``Retry-After`` value (whole seconds, at least 1)."""
        retry_after = str(max(1, math.ceil(wait)))
        return ServiceError(
            ErrorType.RATE_LIMITED,
            f"Too many requests from this client: the limit is {self.rps:g} per second with bursts of "
            f"{self.burst}; retry after {retry_after} s.",
        ), retry_after


class RateLimitMiddleware:
    """ASGI middleware on the inference routes; inside the access log, so a 429 is logged and counted."""

    def __init__(self, app, limiter: RateLimiter):
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope, receive, send):
        route = INFERENCE_ROUTE.match(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(self.limiter.key_header.encode("latin-1")) if self.limiter.key_header \
            else None
        peer = scope.get("client")
        wait = self.limiter.wait_s(self.limiter.client(header.decode("latin-1") if header else None,
                                                        peer[0] if peer else None))
        if not wait:
            return await self.app(scope, receive, send)
        error, retry_after = self.limiter.error(wait)
        await send_error(scope, receive, send, error, headers={"retry-after": retry_after})


def _peer_ip(peer: str) -> str:
    """gRPC's ``ipv4:1.2.3.4:5678`` / ``ipv6:[::1]:5678`` -> the address."""
    address = peer.split(":", 1)[-1]
    return address.rsplit(":", 1)[0].strip("[]") if ":" in address else address


class GrpcRateLimit(ModelInferInterceptor):
    """The same limit on gRPC ``ModelInfer``: RESOURCE_EXHAUSTED, with ``retry-after`` trailing metadata."""

    def __init__(self, limiter: RateLimiter):
        self.limiter = limiter

    def wrap(self, infer, metadata: dict):
        header = metadata.get(self.limiter.key_header) if self.limiter.key_header else None

        async def limited(request, context):
            wait = self.limiter.wait_s(self.limiter.client(header, _peer_ip(context.peer() or "")))
            if wait:
                error, retry_after = self.limiter.error(wait)
                context.set_trailing_metadata((("retry-after", retry_after),))
                raise error
            return await infer(request, context)

        return limited
