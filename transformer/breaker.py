"""A circuit breaker, so a dead Redis costs one timeout per probe, not one per request."""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, HALF_OPEN, OPEN = 0, 1, 2  # also the values of the circuit-state gauge
STATE_NAMES = {CLOSED: "closed", HALF_OPEN: "half_open", OPEN: "open"}


class CircuitBreaker:
    """Closed: calls go through. ``failure_threshold`` failures in a row open it: calls are
    skipped for ``reset_after_s``, then one probe call is let through (half-open); its
    success closes the circuit, its failure opens it again."""

    def __init__(self, failure_threshold: int, reset_after_s: float, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[int], None] = lambda state: None):
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._on_change = on_change
        self.state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    def _set(self, state: int) -> None:
        if state != self.state:
            self.state = state
            self._on_change(state)

    def allow(self) -> bool:
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self._clock() - self._opened_at >= self.reset_after_s:
            self._set(HALF_OPEN)
        if self.state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._probing = False
        self._set(CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self.state == HALF_OPEN or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._set(OPEN)
