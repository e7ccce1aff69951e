"""Compute each distinct text once, even when concurrent requests ask for it at the same moment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping

import numpy as np

from runtime import tracing

Fetch = Callable[[list], Awaitable[Mapping[Hashable, np.ndarray]]]


class Coalescer:
    def __init__(self):
        self._inflight: dict[Hashable, asyncio.Future] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def compute(self, wanted: list[Hashable], fetch: Fetch) -> tuple[dict[Hashable, np.ndarray], int]:
        """Results for ``wanted`` keys: ones already in flight are awaited, the rest fetched in one call.

        Returns the results and how many keys were answered by another request's call.
        """
        loop = asyncio.get_running_loop()
        theirs = {key: self._inflight[key] for key in wanted if key in self._inflight}
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
        results = {key: future.result() for key, future in mine.items()}
        if theirs:
            with tracing.span("coalescing wait", {"texts": len(theirs)}):
                for key, future in theirs.items():
                    results[key] = await asyncio.shield(future)
        return results, len(theirs)
