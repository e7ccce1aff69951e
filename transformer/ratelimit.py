"""Rate limiting at the transformer, charged by cost: token buckets per client and for all clients together.

Off unless ``--rate_limit_rps`` (per client) or ``--rate_limit_global_rps`` (all clients
together) is set. A client is the value of the header named by ``--rate_limit_key``
(e.g. ``x-api-key``, the same name as gRPC metadata; with the chart's ``istio.jwt``, the
verified claim Istio copies to ``x-tc-verified-client``), or its IP address when the header
is absent or no header is configured.

What a request costs is counted in **units**, one a model row of up to 128 tokens
(``request_cost``): a short text is 1, a text of 512 tokens 4, an explained text of 64
words 65 (one row per word, plus the text), ``chunks`` a unit per 128 tokens of the whole
text. It is estimated from characters and words before any work is done, and charged in
two steps: one unit when the request arrives (REST: before the body is read; gRPC: before
the message is received), then, once the texts are known and looked up in
the cache, the cost of those the model must compute (cache hits are free). A bucket holds
``--rate_limit_burst`` units and refills at ``--rate_limit_rps`` a second; a request is let
through when its bucket holds its cost, or, costing more than the bucket can ever hold, when
the bucket is full (it is left in debt). Otherwise the answer is 429 ``rate_limited`` with
``Retry-After``: when the bucket will hold it. The global bucket is charged the same way,
so one client's costly requests wait for that client only, until all clients together pass
the global rate.

Only inference calls are limited (REST ``:predict``/``:explain``/``/infer``, gRPC
``ModelInfer``): health probes and scrapes never are. Buckets live in the worker process:
with ``--workers N`` a client gets up to N times the rate, spread over the workers.
Clients are kept as hashes (no API key is held in memory as sent) in a bounded LRU of
``MAX_CLIENTS``: a client evicted by that many newer ones starts again with a full
bucket, which is the price of a memory bound that clients cannot push.

The same hash, when the client is named by the key header, goes to the predictor as
``x-tc-client`` (contract/schema.py), whose batches take turns across clients
(predictor/batcher.py). A client keyed by IP is not named there: in a pod every IP is a
proxy's, and one shared name would put all such clients in one turn.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import islice

import grpc

from contract.errors import ErrorType, ServiceError
from runtime.accesslog import INFERENCE_ROUTE
from runtime.grpc import GRPC_INFER, refusal, refuse
from runtime.rest import send_error

MAX_CLIENTS = 100_000  # ~100 bytes each: 10 MB at most
UNIT_TOKENS = 128  # one unit: a model row of up to this many tokens
ROW_TOKENS = 512  # a row's tokens at most (--max_length)
CHUNK_TOKENS = 8 * 512  # what `chunks` computes of a text at most (--max_windows windows of --max_length)
EXPLAIN_WORDS = 64  # the words an explanation covers (the predictor's --explain_max_words default)
_WORD = re.compile(r"\S+")


def _tokens(chars: int) -> int:
    """A text's tokens, estimated from its characters as the batcher does (~4 a token, plus the special two)."""
    return chars // 4 + 2


def _units(tokens: int) -> int:
    return max(1, math.ceil(tokens / UNIT_TOKENS))


def request_cost(texts: Sequence[str], explain: bool = False, chunks: bool = False) -> int:
    """The units the model spends on ``texts`` (see the module docstring), from characters and words only."""
    total = 0
    for text in texts:
        if explain:
            words = list(islice(_WORD.finditer(text), EXPLAIN_WORDS))
            explained = words[-1].end() if words else len(text)
            total += (len(words) + 1) * _units(min(_tokens(explained), ROW_TOKENS))
        else:
            total += _units(min(_tokens(len(text)), CHUNK_TOKENS if chunks else ROW_TOKENS))
    return total


class _Buckets:
    """Token buckets by key, ``capacity`` units each, refilled at ``rate`` a second, in a bounded LRU."""

    def __init__(self, rate: float, capacity: float, max_keys: int):
        self.rate, self.capacity, self.max_keys = rate, capacity, max_keys
        self._state: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # key -> (units, updated at)

    def units(self, key: bytes, now: float) -> float:
        units, updated = self._state.get(key, (self.capacity, now))
        return min(self.capacity, units + (now - updated) * self.rate)

    def wait_s(self, key: bytes, cost: float, now: float, paid: float = 0) -> float:
        """0 if ``cost`` may be charged now, else the seconds until it may (nothing is charged). ``paid``:
        what the same request was charged already (its first unit)."""
        need = min(cost, self.capacity - paid)  # more than it can hold: wait for a full bucket, then go into debt
        wait = (need - self.units(key, now)) / self.rate
        return wait if wait > 1e-9 else 0.0  # a refill's rounding is not a wait

    def charge(self, key: bytes, cost: float, now: float) -> None:
        units = self.units(key, now) - cost
        self._state.pop(key, None)
        self._state[key] = (units, now)  # (re)inserted last: the most recently seen
        if len(self._state) > self.max_keys:
            self._state.popitem(last=False)


_GLOBAL = b"*all clients*"  # the global bucket's key: not a 16-byte digest, so no client's


class RateLimiter:
    """Per-client buckets (``rps`` units a second, ``burst`` at once) and a global one (``global_rps``,
    ``global_burst``); either may be off (0). A request's cost is charged to both or to neither."""

    def __init__(self, rps: float, burst: int = 0, key_header: str = "", max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic, global_rps: float = 0.0, global_burst: int = 0):
        if rps < 0 or global_rps < 0 or (rps == 0 and global_rps == 0):
            raise ValueError("a limiter is only built when a rate is on, and rates are not negative")
        self.rps = rps
        self.burst = (burst if burst > 0 else max(1, math.ceil(rps))) if rps else 0
        self.global_rps = global_rps
        self.global_burst = (global_burst if global_burst > 0 else max(1, math.ceil(global_rps))) if global_rps else 0
        self.key_header = key_header.strip().lower()
        self.max_clients = max_clients
        self._clock = clock
        self._clients = _Buckets(rps, self.burst, max_clients) if rps else None
        self._global = _Buckets(global_rps, self.global_burst, 1) if global_rps else None

    @property
    def _buckets(self):  # the per-client state (tests read its size and keys)
        return self._clients._state if self._clients else {}

    def client(self, header_value: str | None, peer_ip: str | None) -> str:
        return f"key:{header_value}" if self.key_header and header_value else f"ip:{peer_ip or '-'}"

    @staticmethod
    def digest(client: str) -> bytes:
        return hashlib.blake2b(client.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def take(self, digest: bytes, cost: float, paid: float = 0) -> tuple[float, str]:
        """``(0, "")`` when ``cost`` units were charged to the client ``digest`` and the global bucket, else
        ``(seconds until it may go, which limit: "client" or "global")`` and nothing is charged. ``paid``:
        units the same request was charged already (a request costing more than a bucket holds goes when
        the bucket was full at its arrival)."""
        now = self._clock()
        if self._clients and (wait := self._clients.wait_s(digest, cost, now, paid)):
            return wait, "client"
        if self._global and (wait := self._global.wait_s(_GLOBAL, cost, now, paid)):
            return wait, "global"
        if self._clients:
            self._clients.charge(digest, cost, now)
        if self._global:
            self._global.charge(_GLOBAL, cost, now)
        return 0.0, ""

    def wait_s(self, client: str, cost: float = 1) -> float:
        """0 when ``client`` may go ahead now (``cost`` is taken), else the seconds until it may."""
        return self.take(self.digest(client), cost)[0]

    def error(self, wait: float, cost: float = 1, which: str = "client") -> tuple[ServiceError, str]:
        """The error to answer with and the ``Retry-After`` value (whole seconds, at least 1)."""
        retry_after = str(max(1, math.ceil(wait)))
        rate, burst = (self.rps, self.burst) if which == "client" else (self.global_rps, self.global_burst)
        whose = "this client" if which == "client" else "all clients together"
        return ServiceError(
            ErrorType.RATE_LIMITED,
            f"Too many requests from {whose}: this one costs {cost:g} units (a unit is a model row of up to "
            f"{UNIT_TOKENS} tokens), the limit is {rate:g} units per second with bursts of {burst}; retry after "
            f"{retry_after} s.",
        ), retry_after


@dataclass
class Charge:
    """One request's account: the model charges its texts' cost to it (``charge``), the middleware or
    interceptor that made it answers ``retry_after`` when that is refused."""

    limiter: RateLimiter
    digest: bytes
    named: str | None  # the client's hash as the predictor sees it; None for a client keyed by IP
    retry_after: str | None = None


CURRENT: ContextVar[Charge | None] = ContextVar("rate_limit_charge", default=None)


def charge(texts: Sequence[str], explain: bool = False, chunks: bool = False) -> None:
    """Charge the current request for what the model will compute for ``texts``; ServiceError 429 if
    its buckets do not hold it. Nothing happens when rate limiting is off. The request's first unit was
    charged when it arrived."""
    account = CURRENT.get()
    if account is None or not texts:
        return
    cost = request_cost(texts, explain, chunks)
    if cost <= 1:
        return
    wait, which = account.limiter.take(account.digest, cost - 1, paid=1)
    if wait:
        error, account.retry_after = account.limiter.error(wait, cost, which)
        raise error


def client_name() -> str | None:
    """The current client's name for the predictor (a hash of its key), or None."""
    account = CURRENT.get()
    return account.named if account is not None else None


def _account(limiter: RateLimiter, header: str | None, peer_ip: str | None) -> Charge:
    digest = limiter.digest(limiter.client(header, peer_ip))
    return Charge(limiter, digest, digest.hex() if limiter.key_header and header else None)


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
        account = _account(self.limiter, header.decode("latin-1") if header else None, peer[0] if peer else None)
        wait, which = self.limiter.take(account.digest, 1)
        if wait:
            error, retry_after = self.limiter.error(wait, 1, which)
            return await send_error(scope, receive, send, error, headers={"retry-after": retry_after})

        async def send_with_retry_after(message):
            if message["type"] == "http.response.start" and account.retry_after is not None:
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"retry-after", account.retry_after.encode())]}
            await send(message)

        token = CURRENT.set(account)
        try:
            return await self.app(scope, receive, send_with_retry_after)
        finally:
            CURRENT.reset(token)


def _peer_ip(peer: str) -> str:
    """gRPC's ``ipv4:1.2.3.4:5678`` / ``ipv6:[::1]:5678`` -> the address."""
    address = peer.split(":", 1)[-1]
    return address.rsplit(":", 1)[0].strip("[]") if ":" in address else address


class GrpcRateLimit(grpc.aio.ServerInterceptor):
    """The same limit on gRPC ``ModelInfer``: RESOURCE_EXHAUSTED, with ``retry-after`` trailing metadata.

    gRPC's asyncio server runs the interceptors when the call's metadata has arrived and before it
    receives the message: ``_handle_rpc`` awaits ``_find_method_handler`` (the interceptors), then
    ``_handle_unary_unary_rpc`` awaits ``_receive_message`` and ``deserialize`` (grpcio 1.85,
    src/python/grpcio/grpc/_cython/_cygrpc/aio/server.pyx.pxi). A client named by the key metadata is
    refused in ``intercept_service``, with a stream-unary handler, which the server does not feed a
    message until it asks for one: the message is neither read nor decoded. A client keyed by its IP is
    known only to the handler's context (``context.peer()``; ``HandlerCallDetails`` has no peer): its
    ModelInfer becomes a stream-unary handler too (``_handle_stream_unary_rpc`` gives it a
    ``_MessageReceiver``, which receives and decodes on ``__anext__``), which charges the peer's bucket
    and only then pulls the one message and calls KServe's unary handler. The outer interceptors wrap a
    stream-unary ModelInfer as they wrap a unary one (runtime/grpc.py ``ModelInferInterceptor``), so such
    calls, refusals included, are logged and counted.
    """

    def __init__(self, limiter: RateLimiter):
        self.limiter = limiter

    async def intercept_service(self, continuation, details):
        if details.method != GRPC_INFER:
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        header = metadata.get(self.limiter.key_header) if self.limiter.key_header else None
        if header:
            account = _account(self.limiter, header, None)
            wait, which = self.limiter.take(account.digest, 1)
            if wait:
                return refusal(*self.limiter.error(wait, 1, which))
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        infer = handler.unary_unary
        if header:
            limited = self._limited(infer, account)
            return grpc.unary_unary_rpc_method_handler(
                limited, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)

        async def by_peer(request_iterator, context):
            """Keyed by IP: charged before the message is received, from the handler's context (the only
            place the peer is known); a refused call's message is never read nor decoded."""
            account = _account(self.limiter, None, _peer_ip(context.peer() or ""))
            wait, which = self.limiter.take(account.digest, 1)
            if wait:
                refuse(context, *self.limiter.error(wait, 1, which))
            try:
                request = await request_iterator.__anext__()  # the one message (a unary call's client sends one)
            except StopAsyncIteration:  # half-closed without a message
                raise ServiceError(ErrorType.INVALID_REQUEST, "The call ended before its message.") from None
            return await self._limited(infer, account)(request, context)

        # stream-unary: the asyncio server (_handle_stream_unary_rpc) hands it a _MessageReceiver, which
        # receives and decodes a message only when asked (grpcio 1.85, aio/server.pyx.pxi)
        return grpc.stream_unary_rpc_method_handler(
            by_peer, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    def _limited(self, infer, account: Charge):
        async def limited(request, context):
            token = CURRENT.set(account)
            try:
                return await infer(request, context)
            except ServiceError:
                if account.retry_after is not None:
                    context.set_trailing_metadata((("retry-after", account.retry_after),))
                raise
            finally:
                CURRENT.reset(token)

        return limited
