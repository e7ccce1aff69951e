"""The per-text result cache in Redis, fail-open.

One MGET per request, one pipelined batch of ``SET key value EX ttl`` per predictor
call. Every Redis call has a tight deadline; any error or timeout turns into "miss"
(or "not written"), never into a failed request, and the circuit breaker stops paying
the deadline on every request while Redis is down. Values are the model's
probabilities as float32 bytes: no text is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import redis.asyncio as redis
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis._parsers.socket import SERVER_CLOSED_CONNECTION_ERROR
from redis.exceptions import ClusterError, RedisError, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError

from transformer.breaker import STATE_NAMES, CircuitBreaker
from transformer.metrics import CACHE_ERRORS, CACHE_SKIPPED, CIRCUIT_STATE

logger = logging.getLogger(__name__)

# A failed connection or a timeout (a refused command, ResponseError, is handled apart).
CACHE_FAILURES = (RedisError, OSError, asyncio.TimeoutError)
# Answers that are ResponseErrors but say the cache is unavailable, not that it refused one write.
UNAVAILABLE_ANSWERS = (ClusterError, TryAgainError)  # CLUSTERDOWN, MASTERDOWN, TRYAGAIN
MAX_IDLE = 64  # idle connections kept for lookups: as many as were ever busy at once, up to this


class PartialAnswer(Exception):
    """Raised by a call that got some answers and one failure (Redis Cluster: a node down)."""

    def __init__(self, result, cause: BaseException):
        super().__init__(repr(cause))
        self.result, self.cause = result, cause


class TextCache:
    def __init__(self, redis_url: str, model_name: str, ttl_s: int, timeout_s: float, failure_threshold: int,
                 reset_after_s: float):
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.model_name = model_name
        self.redis_url = redis_url
        self._client: redis.Redis | None = None  # created in the serving event loop
        self._idle: list = []  # connections for the lookups' MGET (_read), made from the client's pool
        self.breaker = CircuitBreaker(failure_threshold, reset_after_s, on_change=self._circuit_changed)
        CIRCUIT_STATE.labels(model_name).set(self.breaker.state)
        # Exported at 0 from the start, so rate() and the alerts see a series before the first failure.
        for operation in ("get", "set"):
            CACHE_ERRORS.labels(model_name, operation)
        CACHE_SKIPPED.labels(model_name)

    def __getstate__(self):  # picklable for KServe's multi-worker mode; each worker connects on its own
        return {**self.__dict__, "_client": None, "_idle": []}

    @property
    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self):
        return redis.Redis.from_url(
            self.redis_url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s,
            retry_on_timeout=False,
        )

    def _circuit_changed(self, state: int) -> None:
        CIRCUIT_STATE.labels(self.model_name).set(state)
        logger.warning("Cache circuit for %s is now %s", self.model_name, STATE_NAMES[state])

    async def _guarded(self, operation: str, call):
        """Run one Redis call under the breaker and the deadline; None when skipped or failed."""
        if not self.breaker.allow():
            CACHE_SKIPPED.labels(self.model_name).inc()
            return None
        # The deadline as asyncio.timeout keeps it (asyncio/timeouts.py, Python 3.11), without its object, state
        # machine and three calls per lookup (BENCHMARKS.md, "Hit path, fourth pass"): a timer that cancels this
        # task; a cancellation that the timer made (and no one else's: the count of requests) is the timeout.
        # Not wait_for: in 3.11 it wraps the call in a new Task.
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        cancelling, expired = task.cancelling(), []
        timer = loop.call_at(loop.time() + self.timeout_s, _expire, task, expired)
        try:
            result = await call()
        except asyncio.CancelledError:
            if not expired or task.uncancel() > cancelling:
                raise
            self._settle(operation, TimeoutError())
            return None
        except PartialAnswer as partial:  # a cluster where some nodes answered: their answers are kept
            self._settle(operation, partial.cause)
            return partial.result
        except CACHE_FAILURES as exc:
            self._settle(operation, exc)
            return None
        finally:
            timer.cancel()
        self._settle(operation, None)
        return result

    def _settle(self, operation: str, exc: BaseException | None) -> None:
        """Count one Redis call's outcome and tell the breaker."""
        if exc is None:
            self.breaker.record_success()
            return
        CACHE_ERRORS.labels(self.model_name, operation).inc()
        if isinstance(exc, ResponseError) and not isinstance(exc, UNAVAILABLE_ANSWERS):
            # Redis answered, and fast, but refused: e.g. OOM when it is full with noeviction. Counted,
            # but it does not open the circuit: reads of the entries it holds still work.
            logger.debug("cache %s refused: %r", operation, exc)
            self.breaker.record_success()
        else:
            logger.debug("cache %s failed: %r", operation, exc)
            self.breaker.record_failure()

    async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Each key's stored bytes, or None for a miss (or when the cache is unavailable)."""
        if not keys:
            return []
        values = await self._guarded("get", lambda: self._read(keys))
        return [None] * len(keys) if values is None else list(values)

    async def _read(self, keys: Sequence[str]):
        """The MGET, on a pooled connection directly.

        ``Redis.mget`` goes through ``execute_command``: the pool, a retry wrapper with two closures,
        the client's own timing hooks. For the one command a cache hit sends, that was about a
        fifth of the lookup's CPU (BENCHMARKS.md, issue 27); the connection does the same I/O and
        parsing. What the retry wrapper is for, a pooled connection that Redis has closed since
        (a restart), is kept: the command goes once more, on a new connection. Any other failure, or the deadline cutting a read short, disconnects the
        connection (redis-py does that inside ``read_response``) and reaches ``_guarded``.
        """
        # Our own idle connections, not the pool's get_connection/release: those take an asyncio.Lock
        # twice, record four observability events and poll the socket (can_read) on every call
        # (redis/asyncio/connection.py ConnectionPool, redis-py 7): about a tenth of a hit's instructions
        # (BENCHMARKS.md, "Hit path, third pass"). A connection goes back idle only after a whole reply
        # has been read, so it holds no stale data (what the poll was for); any failure drops it.
        idle = self._idle
        connection = idle.pop() if idle else self._lookup_connection()
        done = False
        try:
            command = pack_mget(keys, connection.encoder)
            for attempt in (1, 2):
                try:
                    if connection.is_connected and type(connection._parser) is _AsyncHiredisParser:
                        values = await _request(connection, command)
                    else:  # a new connection (redis-py connects it: TLS, AUTH, SELECT), or another parser
                        await connection.send_packed_command(command, check_health=False)
                        values = await connection.read_response()
                    done = True
                    return values
                except (RedisConnectionError, OSError):  # closed by Redis since: once more, reconnected
                    if attempt == 2:
                        raise
                    await connection.disconnect()
        finally:
            if done and len(idle) < MAX_IDLE:
                idle.append(connection)
            else:  # failed, cut short by the deadline, or one too many: closed (redis-py's own disconnect)
                await connection.disconnect(nowait=True)

    def _lookup_connection(self):
        """A connection like the pool's, without a socket timeout of its own: ``_guarded``'s deadline bounds the
        whole lookup, and with one redis-py wraps every send in ``asyncio.wait_for`` (a new Task per call in
        Python 3.11) and every read in a timeout context of its own (redis/asyncio/connection.py
        ``send_packed_command``, ``read_response``). Connecting keeps ``socket_connect_timeout``."""
        pool = self._redis.connection_pool
        return pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})

    async def set_many(self, entries: Mapping[str, np.ndarray | bytes]) -> None:
        """Probabilities are stored as float32 bytes; bytes as they are."""
        if not entries:
            return

        await self._guarded("set", lambda: self._write(entries))

    async def _write(self, entries: Mapping[str, np.ndarray | bytes]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, probs in entries.items():
                pipe.set(key, encode(probs), ex=self.ttl_s)
            await pipe.execute()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _expire(task: asyncio.Task, expired: list) -> None:
    expired.append(True)
    task.cancel()


async def _request(connection, command: bytes):
    """One command's reply on a connected redis-py connection with the hiredis parser: what its
    ``send_packed_command`` and ``read_response`` do for it, without their layers (the timeout, host and
    protocol checks, the parser's ``read_response``/``read_from_socket`` frames, the health-check clock;
    redis/asyncio/connection.py, redis/_parsers/hiredis.py ``_AsyncHiredisParser``, redis-py 7): the
    write, then the same hiredis reader fed from the same StreamReader until it has the reply (about a
    twentieth of a hit's instructions: BENCHMARKS.md, "Hit path, fourth pass"). What redis-py does on a
    failure is ``_read``'s: a read error or the deadline drops the connection, a closed one retries once.
    RESP2 or RESP3 (redis-py 7's default): an MGET's reply is an array in both."""
    writer = connection._writer
    writer.write(command)
    if writer.transport.get_write_buffer_size():  # not all sent at once: wait as redis-py's drain() does
        await writer.drain()
    reader, stream = connection._parser._reader, connection._reader
    while True:
        reply = reader.gets()
        while reply is NOT_ENOUGH_DATA:
            data = await stream.read(connection._parser._read_size)
            if not data:
                raise RedisConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
            reader.feed(data)
            reply = reader.gets()
        if type(reply) is list:  # MGET's reply; in RESP3 a push (hiredis.PushNotification) is a list's subclass
            return reply
        if isinstance(reply, Exception):  # an error reply (ResponseError), as redis-py raises it
            raise reply
        if not isinstance(reply, list):
            return reply
        await connection._parser.handle_push_response(reply)  # a RESP3 push before the reply: redis-py's handling


def pack_mget(keys: Sequence[str], encoder) -> bytes:
    """``MGET keys...`` in RESP, the bytes redis-py's ``pack_command`` writes (joined), keys encoded by the
    connection's ``encoder`` as it encodes them. redis-py's is generic (a command name to split, memoryviews,
    chunking past 6 kB) and was a tenth of a lookup's own Python time on a hit (BENCHMARKS.md, "Hit path,
    third pass"); tests/unit/transformer/test_pack_mget.py compares the two."""
    encoding, errors = encoder.encoding, encoder.encoding_errors
    encoded = [key.encode(encoding, errors) for key in keys]
    return b"".join([b"*%d\r\n$4\r\nMGET\r\n" % (len(encoded) + 1), *[b"$%d\r\n%b\r\n" % (len(k), k) for k in encoded]])


def encode(probs: np.ndarray | bytes) -> bytes:
    return probs if isinstance(probs, bytes) else np.asarray(probs, dtype=np.float32).tobytes()


def decode_row(value: bytes | None, width: int) -> np.ndarray | None:
    """A cached row of probabilities (``width`` float32), or None for a miss."""
    if value is None or len(value) != width * 4:  # a foreign or truncated value is a miss, not a crash
        return None
    return np.frombuffer(value, dtype=np.float32)
