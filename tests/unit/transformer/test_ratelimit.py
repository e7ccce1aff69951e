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


def test_cost_is_model_rows_times_their_size_in_units():
    from transformer.ratelimit import request_cost

    assert request_cost(["a short text"]) == 1
    assert request_cost(["x" * 2000]) == 4  # ~500 tokens: a full row
    assert request_cost(["x" * 99_990]) == 4  # head: one row whatever the length
    assert request_cost(["x" * 99_990], chunks=True) == 32  # chunks: 8 windows of 512 at most
    sixty_four = " ".join(f"word{i}" for i in range(64))
    assert request_cost([sixty_four], explain=True) == 65  # one row per word plus the text
    assert request_cost([sixty_four + " more words after"], explain=True) == 65  # the first 64 words only
    assert request_cost([sixty_four] * 63, explain=True) == 63 * 65  # the storm request: ~4,096 rows


def test_a_costly_request_waits_for_its_cost_and_leaves_cheap_clients_alone():
    clock = Clock()
    limiter = RateLimiter(rps=10, burst=20, clock=clock)
    costly, cheap = limiter.digest("key:storm"), limiter.digest("key:lone")
    assert limiter.take(costly, 15) == (0, "")
    wait, which = limiter.take(costly, 15)  # 5 units left: 1 s until it holds 15
    assert which == "client" and wait == pytest.approx(1.0)
    assert limiter.take(cheap, 1) == (0, "")  # another client's bucket is its own
    clock.now += 1.0
    assert limiter.take(costly, 15) == (0, "")


def test_a_request_costing_more_than_the_burst_goes_on_a_full_bucket_and_leaves_debt():
    clock = Clock()
    limiter = RateLimiter(rps=10, burst=20, clock=clock)
    client = limiter.digest("key:a")
    assert limiter.take(client, 1)[0] == 0
    assert limiter.take(client, 65)[0] == pytest.approx(0.1)  # waits for a full bucket, not forever
    clock.now += 0.1
    assert limiter.take(client, 65) == (0, "")  # 20 - 65: 45 units in debt
    assert limiter.take(client, 1)[0] == pytest.approx(4.6)  # until the bucket holds 1 again


def test_the_global_limit_binds_all_clients_together():
    clock = Clock()
    limiter = RateLimiter(rps=0, global_rps=5, global_burst=10, clock=clock)
    assert limiter.take(limiter.digest("key:a"), 6) == (0, "")
    wait, which = limiter.take(limiter.digest("key:b"), 6)  # a fresh client, but only 4 units are left
    assert which == "global" and wait == pytest.approx(0.4)
    assert limiter.take(limiter.digest("key:c"), 4) == (0, "")
    error, _ = limiter.error(1.0, 6, "global")
    assert "all clients together" in error.message


def test_a_refused_request_charges_neither_bucket():
    clock = Clock()
    limiter = RateLimiter(rps=10, burst=10, global_rps=1, global_burst=6, clock=clock)
    client = limiter.digest("key:a")
    assert limiter.take(client, 4) == (0, "")  # the client has 6 left, all clients 2
    assert limiter.take(client, 5)[1] == "global"  # the client's bucket holds it, the global one does not
    assert limiter._clients.units(client, clock.now) == pytest.approx(6)  # only the request that went
    assert limiter.take(limiter.digest("key:b"), 2) == (0, "")


def test_a_limiter_needs_a_rate():
    with pytest.raises(ValueError):
        RateLimiter(rps=0)


def test_the_rest_of_a_costly_request_goes_when_the_bucket_was_full_at_its_arrival():
    clock = Clock()
    limiter = RateLimiter(rps=10, burst=20, clock=clock)
    client = limiter.digest("key:a")
    assert limiter.take(client, 1) == (0, "")  # the unit charged on arrival ...
    assert limiter.take(client, 64, paid=1) == (0, "")  # ... then the rest of an explained 64-word text
    assert limiter.take(client, 1)[0] == pytest.approx(4.6)  # 45 units in debt
