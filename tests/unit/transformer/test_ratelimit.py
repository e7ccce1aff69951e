"""The token bucket of the transformer's rate limit, on a fake clock."""

import pytest

from transformer.ratelimit import RateLimiter, _peer_ip


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_burst_passes_then_the_rate_applies():
    clock = Clock()
    limiter = RateLimiter(rps=2, burst=3, clock=clock)
    assert [limiter.wait_s("ip:a") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait_s("ip:a") == pytest.approx(0.5)  # one token per 0.5 s
    clock.now += 0.5
    assert limiter.wait_s("ip:a") == 0
    assert limiter.wait_s("ip:a") > 0
    clock.now += 60  # refills up to the burst, never beyond
    assert [limiter.wait_s("ip:a") for _ in range(4)][:3] == [0, 0, 0]
    assert limiter.wait_s("ip:a") > 0


def test_clients_have_their_own_buckets():
    limiter = RateLimiter(rps=1, burst=1, clock=Clock())
    assert limiter.wait_s("ip:a") == 0 and limiter.wait_s("ip:a") > 0
    assert limiter.wait_s("ip:b") == 0


def test_rejected_requests_do_not_push_the_wait_further():
    clock = Clock()
    limiter = RateLimiter(rps=1, burst=1, clock=clock)
    limiter.wait_s("ip:a")
    waits = [limiter.wait_s("ip:a") for _ in range(5)]
    assert waits == [pytest.approx(1.0)] * 5  # a client hammering while limited is not punished beyond the rate


def test_the_key_header_names_the_client_else_the_ip():
    keyed = RateLimiter(rps=1, key_header="X-API-Key")
    assert keyed.key_header == "x-api-key"
    assert keyed.client("team-a", "10.0.0.1") == "key:team-a"
    assert keyed.client(None, "10.0.0.1") == "ip:10.0.0.1"
    assert RateLimiter(rps=1).client("team-a", "10.0.0.1") == "ip:10.0.0.1"  # no header configured: IP only


def test_memory_is_bounded_by_max_clients():
    limiter = RateLimiter(rps=1, burst=1, max_clients=100, clock=Clock())
    for i in range(1000):
        limiter.wait_s(f"key:minted-{i}")
    assert len(limiter._buckets) == 100
    assert all(len(digest) == 16 for digest in limiter._buckets)  # hashes, not what clients sent


def test_the_error_says_when_to_retry():
    limiter = RateLimiter(rps=0.5, burst=2)
    error, retry_after = limiter.error(1.2)
    assert error.error_type == "rate_limited" and error.http_status == 429
    assert retry_after == "2" and "retry after 2 s" in error.message
    assert limiter.error(0.01)[1] == "1"
    assert RateLimiter(rps=2.5).burst == 3


def test_grpc_peer_addresses():
    assert _peer_ip("ipv4:10.1.2.3:5555") == "10.1.2.3"
    assert _peer_ip("ipv6:[::1]:5555") == "::1"
    assert _peer_ip("unix:/tmp/socket") == "/tmp/socket"
