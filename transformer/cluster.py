"""The cache on a Redis Cluster (or ElastiCache in cluster mode), with redis-py's cluster client.

One MGET over keys in different hash slots fails there with CROSSSLOT, so a lookup is
grouped by slot: one MGET per slot, all of them in one cluster pipeline, which
redis-py sends as one pipelined round trip per node, to every node at once. Writes
go the same way (a SET per key, pipelined per node). Same deadline, fail-open and
circuit breaker as a single Redis (transformer/cache.py): the whole lookup has the
one ``--cache_timeout_ms`` deadline, and a node that is down costs only its own keys
(they are misses; the other nodes' hits are still used) and counts as one failure of
the breaker.

The client must learn the cluster before its first command (the slot map from
CLUSTER SLOTS and the command table from COMMAND): hundreds of milliseconds on a busy
machine, far past the deadline. So it runs in the background, shielded from the
deadline, and until it is done lookups are misses counted as skipped (not errors).
After a connection failure or a CLUSTERDOWN the slot map is read again the same way,
at most once per breaker reset period, so a failover's new master is found.

redis-py's own retries (a 0.25 s sleep, then again) are off: a cache call that would
wait for them is a miss instead, and the breaker decides when to try again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ResponseError, TimeoutError
from redis.retry import Retry

from transformer.cache import UNAVAILABLE_ANSWERS, PartialAnswer, TextCache, encode
from transformer.metrics import CACHE_SKIPPED

logger = logging.getLogger(__name__)

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
STALE_MAP = (ConnectionError, TimeoutError, *UNAVAILABLE_ANSWERS)  # failures after which the slot map is re-read


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


class ClusterTextCache(TextCache):
    """``TextCache`` on a Redis Cluster: ``redis://`` or ``rediss://`` naming any one node (or a
    ``redis+cluster://`` URL, which is the same); the other nodes are discovered from it."""

    _initializing: asyncio.Task | None = None  # the client's initialize(): slot map and command table
    _rereading: asyncio.Task | None = None  # a re-read of the slot map after a failure
    _slot_map_read_at = 0.0

    def __getstate__(self):
        return {**super().__getstate__(), "_initializing": None, "_rereading": None}

    def _connect(self) -> RedisCluster:
        url = self.redis_url.replace("+cluster://", "://", 1)
        return RedisCluster.from_url(
            url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), 0), require_full_coverage=False,  # a node down leaves the others usable
        )

    async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if keys and not await self._known():
            return [None] * len(keys)
        return await super().get_raw_many(keys)

    async def set_many(self, entries: Mapping[str, np.ndarray | bytes]) -> None:
        if entries and await self._known():
            await super().set_many(entries)

    async def _known(self) -> bool:
        """Whether the client knows the cluster; if not, it learns it in the background and this call is a miss."""
        client = self._redis
        if not client._initialize:  # redis-py 8.1's own flag: False once initialize() succeeded
            return True
        if self._initializing is None or self._initializing.done():
            if not self.breaker.allow():  # learning is a call like any other: the breaker may skip it
                CACHE_SKIPPED.labels(self.model_name).inc()
                return False
            self._initializing = asyncio.ensure_future(self._initialize(client))
        try:  # done within the deadline once warm; the first time it is not, and goes on meanwhile
            await asyncio.wait_for(asyncio.shield(self._initializing), self.timeout_s)
            return True
        except TimeoutError:
            CACHE_SKIPPED.labels(self.model_name).inc()
            return False
        except Exception:  # noqa: BLE001 - counted by _initialize
            return False

    async def _initialize(self, client: RedisCluster) -> None:
        try:
            await client.initialize()
        except Exception as exc:
            self._settle("get", exc)  # the cluster is unreachable: a failure, for the breaker to count
            raise
        self.breaker.record_success()

    async def _pipelined(self, commands: list[tuple]) -> list:
        """Each command's reply, or its exception, in order; PartialAnswer if any failed."""
        pipe = self._redis.pipeline()
        for command in commands:
            pipe.execute_command(*command)
        replies = await pipe.execute(raise_on_error=False)
        failures = [reply for reply in replies if isinstance(reply, Exception)]
        if failures:
            if any(isinstance(e, STALE_MAP) for e in failures):
                self._reread_slot_map()
            cause = next((e for e in failures if not isinstance(e, ResponseError) or isinstance(e, UNAVAILABLE_ANSWERS)),
                         failures[0])
            raise PartialAnswer(replies, cause)
        return replies

    def _reread_slot_map(self) -> None:
        """In the background, at most once per breaker reset period: while a node stays down every lookup that
        touches it fails, and each re-read is a CLUSTER SLOTS round trip."""
        now = time.monotonic()
        if now - self._slot_map_read_at >= self.breaker.reset_after_s:
            self._slot_map_read_at = now
            if self._rereading is None or self._rereading.done():
                self._rereading = asyncio.ensure_future(self._redis.nodes_manager.initialize())
                self._rereading.add_done_callback(_log_failure)

    async def _read(self, keys: Sequence[str]) -> list:
        by_slot: dict[int, list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            by_slot[self._redis.keyslot(key)].append(i)
        groups = list(by_slot.values())
        values: list = [None] * len(keys)

        def placed(replies: list) -> list:
            for indices, reply in zip(groups, replies):
                if not isinstance(reply, Exception):
                    for i, value in zip(indices, reply):
                        values[i] = value
            return values

        try:
            replies = await self._pipelined([("MGET", *(keys[i] for i in indices)) for indices in groups])
        except PartialAnswer as partial:
            raise PartialAnswer(placed(partial.result), partial.cause) from None
        return placed(replies)

    async def _write(self, entries: Mapping[str, np.ndarray | bytes]) -> None:
        await self._pipelined([("SET", key, encode(probs), "EX", self.ttl_s) for key, probs in entries.items()])


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("reading the Redis Cluster's slot map failed: %r", task.exception())
