"""Compute each distinct text once, even when concurrent requests ask for it at the same moment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping

import numpy as np

from runtime import tracing

Fetch = Callable[[list], Awaitable[Mapping[Hashable, np.ndarray]]]


# A result stays on hand this long after its fetch. A request whose cache lookup was sent before that
# fetch's cache write landed reads a miss, and finds the fetch no longer in flight: without the linger it
# computes the text a second time (seen on a loaded machine: tests/integration/test_transformer.py
# test_duplicates_and_concurrent_requests_are_computed_once). Bounded by the distinct texts computed in
# that time.
LINGER_S = 1.0


class Coalescer:
    def __init__(self, linger_s: float = LINGER_S):
        self._inflight: dict[Hashable, asyncio.Future] = {}
        self._recent: dict[Hashable, asyncio.Future] = {}  # fetched within linger_s, with a result
        self.linger_s = linger_s

    def __len__(self) -> int:
        return len(self._inflight)

    async def compute(self, wanted: list[Hashable], fetch: Fetch) -> tuple[dict[Hashable, np.ndarray], int]:
        """Results for ``wanted`` keys: ones already in flight are awaited, the rest fetched in one call.

        Returns the results and how many keys were answered by another request's call.
        """
        loop = asyncio.get_running_loop()
        theirs = {key: future for key in wanted
                  if (future := self._inflight.get(key) or self._recent.get(key)) is not None}
        mine = {key: loop.create_future() for key in wanted if key not in theirs}
        self._inflight.update(mine)
        try:
            if mine:
                fetched = await fetch(list(mine))
                for key, future in mine.items():
                    future.set_result(fetched[key])
        except BaseException as exc:
            for future in mine.values():
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # mark retrieved: waiters re-raise it, nobody else need
            raise
        finally:
            for key in mine:
                self._inflight.pop(key, None)
            fetched_ok = {key: future for key, future in mine.items()
                          if future.done() and not future.cancelled() and future.exception() is None}
            if fetched_ok and self.linger_s > 0:
                self._recent.update(fetched_ok)
                loop.call_later(self.linger_s, self._forget, fetched_ok)
        results = {key: future.result() for key, future in mine.items()}
        if theirs:
            with tracing.span("coalescing wait", {"texts": len(theirs)}):
                for key, future in theirs.items():
                    results[key] = await asyncio.shield(future)
        return results, len(theirs)

    def _forget(self, fetched: dict[Hashable, asyncio.Future]) -> None:
        for key, future in fetched.items():
            if self._recent.get(key) is future:  # not since replaced by a later fetch's
                del self._recent[key]
