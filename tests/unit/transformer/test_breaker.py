"""The circuit breaker with a hand-driven clock."""

from transformer.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_opens_after_consecutive_failures_and_probes_once_after_the_reset():
    clock, changes = Clock(), []
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=1.0, clock=clock, on_change=changes.append)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == CLOSED
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow()
    clock.now = 1.5
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.allow()
    assert changes == [OPEN, HALF_OPEN, CLOSED]


def test_a_failed_probe_opens_it_again():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now = 1.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow()
    clock.now = 1.9
    assert not breaker.allow()  # the reset counts from the failed probe
    clock.now = 2.0
    assert breaker.allow()


def test_a_success_resets_the_failure_count():
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=1.0, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == CLOSED
