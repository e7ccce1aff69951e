"""The cache on a Redis Cluster (or ElastiCache in cluster mode), with redis-py's cluster client.

One MGET over keys in different hash slots fails there with CROSSSLOT, so a lookup is
grouped by slot: one MGET per slot, all of them in one cluster pipeline, which
redis-py sends as one pipelined round trip per node, to every node at once. Writes
go the same way (a SET per key, pipelined per node). Same deadline, fail-open and
circuit breaker as a single Redis (transformer/cache.py): the whole lookup has the
one ``--cache_timeout_ms`` deadline, and a node that is down costs only its own keys
(they are misses; the other nodes' hits are still used) and counts as one failure of
the breaker. After a connection failure or a CLUSTERDOWN the client forgets the
slot map and reads it again on the next call, so a failover's new master is found.

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

logger = logging.getLogger(__name__)

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


class ClusterTextCache(TextCache):
    """``TextCache`` on a Redis Cluster: ``redis://`` or ``rediss://`` naming any one node (or a
    ``redis+cluster://`` URL, which is the same); the other nodes are discovered from it."""

    _slot_map_read_at = 0.0

    def _connect(self) -> RedisCluster:
        url = self.redis_url.replace("+cluster://", "://", 1)
        return RedisCluster.from_url(
            url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), 0), require_full_coverage=False,  # a node down leaves the others usable
        )

    async def _pipelined(self, commands: list[tuple]) -> list:
        """Each command's reply, or its exception, in order; PartialAnswer if any failed."""
        pipe = self._redis.pipeline()
        for command in commands:
            pipe.execute_command(*command)
        replies = await pipe.execute(raise_on_error=False)
        failures = [reply for reply in replies if isinstance(reply, Exception)]
        if failures:
            if any(isinstance(e, (ConnectionError, TimeoutError, *UNAVAILABLE_ANSWERS)) for e in failures):
                await self._forget_slot_map()
            cause = next((e for e in failures if not isinstance(e, ResponseError) or isinstance(e, UNAVAILABLE_ANSWERS)),
                         failures[0])
            raise PartialAnswer(replies, cause)
        return replies

    async def _forget_slot_map(self) -> None:
        """Make the next call read the slot map again (a failover moves slots), at most once per breaker reset
        period: while a node stays down, every lookup touching it fails, and each re-read costs a round trip."""
        now = time.monotonic()
        if now - self._slot_map_read_at >= self.breaker.reset_after_s and self._client is not None:
            self._slot_map_read_at = now
            stale, self._client = self._client, None  # the next call connects anew and reads the slot map
            # Closed once the calls still using it are past their deadline (closing now would fail them).
            asyncio.get_running_loop().call_later(2 * self.timeout_s, lambda: asyncio.ensure_future(stale.aclose()))

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

    async def _write(self, entries: Mapping[str, np.ndarray]) -> None:
        await self._pipelined([("SET", key, encode(probs), "EX", self.ttl_s) for key, probs in entries.items()])
