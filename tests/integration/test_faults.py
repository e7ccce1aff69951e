"""Faults under the transformer, with real processes: a full Redis, a stalled Redis, a frozen predictor,
a predictor killed and restarted under load. Every request gets an answer within its deadline.

Redis killed mid-stream (and hits resuming) and the predictor stopped cleanly are in
test_transformer.py; the slower variants under concurrent load are marked ``chaos``
(``make chaos``); graceful shutdown is test_shutdown.py.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
import uuid

import httpx
import pytest
import redis as redis_client

from tests.integration.servers import RedisProcess, ServerProcess, metric, transformer_for
from tests.integration.test_transformer import post_v1, unique

pytestmark = pytest.mark.integration


def cache_metric(server: ServerProcess, name: str, **labels: str) -> float:
    return metric(server.url, name, model_name="sentiment", **labels)


def timed_post(server: ServerProcess, texts: list[str]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = post_v1(server, texts)
    return response, time.monotonic() - started


def test_a_full_redis_refuses_writes_but_every_request_is_answered_and_hits_go_on(predictor, tmp_path):
    redis = RedisProcess(tmp_path / "redis.log", "--maxmemory-policy", "noeviction").start()
    front = transformer_for(predictor, redis, tmp_path / "transformer.log").start()
    try:
        cached = unique(5)
        assert post_v1(front, cached).status_code == 200
        redis_client.Redis.from_url(redis.url).config_set("maxmemory", "1")  # full: every write is refused (OOM)
        for i, text in enumerate(unique(20)):
            response, seconds = timed_post(front, [cached[i % 5], text])
            assert response.status_code == 200 and response.headers["x-cache"] == "partial"
            assert seconds < 2
        assert cache_metric(front, "transformer_cache_errors_total", operation="set") >= 20  # counted...
        assert cache_metric(front, "transformer_cache_errors_total", operation="get") == 0
        # ...but a Redis that answers "full" is healthy: the circuit stays closed, reads go on.
        assert cache_metric(front, "transformer_cache_circuit_state") == 0
        assert post_v1(front, cached).headers["x-cache"] == "hit"
    finally:
        front.stop()
        redis.stop()


def test_a_stalled_redis_costs_a_few_deadlines_then_the_circuit_skips_it(predictor, tmp_path):
    # A 250 ms Redis deadline: far below the 5 s stall (a request that waited on Redis would take more than
    # 2.5 s), far above a loaded CI machine's scheduling gaps (which must not turn hits into misses).
    redis = RedisProcess(tmp_path / "redis.log").start()
    front = transformer_for(predictor, redis, tmp_path / "transformer.log", "--cache_reset_s", "1",
                            "--cache_timeout_ms", "250").start()
    try:
        cached = unique(4)
        post_v1(front, cached)
        before = [timed_post(front, [text])[1] for text in cached * 3]
        assert all(post_v1(front, [text]).headers["x-cache"] == "hit" for text in cached)
        misses_before = [timed_post(front, unique(1))[1] for _ in range(6)]  # Redis answers, the predictor computes
        # Redis stops answering for 5 s (CLIENT UNPAUSE would itself wait for the pause to end)
        redis_client.Redis.from_url(redis.url).execute_command("CLIENT", "PAUSE", "5000", "ALL")
        during = []
        stalled_until = time.monotonic() + 2.5
        while time.monotonic() < stalled_until:
            response, seconds = timed_post(front, [random.choice(cached)])
            assert response.status_code == 200, response.text
            during.append(seconds)
        get_errors = cache_metric(front, "transformer_cache_errors_total", operation="get")
        errors = get_errors + cache_metric(front, "transformer_cache_errors_total", operation="set")
        skipped = cache_metric(front, "transformer_cache_skipped_total")
        # No cliff: nobody waits for the stalled Redis, only for a deadline or two.
        assert max(during) < 2.0, during
        # Once open, the circuit skips Redis: a stalled request costs what a miss costs with Redis answering.
        assert statistics.median(during) < max(statistics.median(before), statistics.median(misses_before)) + 0.1, \
            (before, misses_before, during)
        # A few deadlines: the first request's get times out, and three failures in a row (gets or the
        # misses' writes, whichever come first) open the circuit; then one probe per --cache_reset_s.
        assert get_errors >= 1
        assert 3 <= errors <= 3 + 3, errors  # 2.5 s of stall: at most three probes
        assert skipped > 0 and skipped >= 2 * len(during) - errors  # the circuit opened: every other call skipped
        deadline = time.monotonic() + 15  # once the pause is over, the circuit probes again (every 1 s)
        outcomes = []
        while time.monotonic() < deadline and outcomes[-4:] != ["hit"] * 4:
            outcomes += [post_v1(front, [text]).headers["x-cache"] for text in cached]
            time.sleep(0.2)
        assert outcomes[-4:] == ["hit"] * 4, outcomes
        assert cache_metric(front, "transformer_cache_circuit_state") == 0
    finally:
        front.stop()
        redis.stop()


def test_a_frozen_predictor_is_a_504_at_the_deadline_while_cached_texts_are_answered(tiny_model_dir, redis, tmp_path):
    # The predictor's own deadline below the transformer's, as the transformer requires (runtime/settings.py).
    backend = ServerProcess("predictor", ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir),
                                          "--request_timeout_s", "1.5"], tmp_path / "predictor.log").start()
    # A 2 s deadline: wide enough that 15 cached answers fit well inside it on a loaded machine.
    front = transformer_for(backend, redis, tmp_path / "transformer.log",
                            "--predictor_request_timeout_seconds", "2").start()
    try:
        cached = unique(3)
        assert post_v1(front, cached).status_code == 200
        os.kill(backend.process.pid, signal.SIGSTOP)  # the predictor "becomes slow": it answers nothing
        try:
            slow_results = []
            slow = [threading.Thread(target=lambda: slow_results.append(timed_post(front, unique(1))))
                    for _ in range(4)]
            for thread in slow:
                thread.start()
            time.sleep(0.1)
            started = time.monotonic()
            fast = [timed_post(front, [text]) for text in cached * 5]
            fast_total = time.monotonic() - started
            for thread in slow:
                thread.join(timeout=10)
        finally:
            os.kill(backend.process.pid, signal.SIGCONT)
        assert all(r.status_code == 200 and r.headers["x-cache"] == "hit" for r, _ in fast)
        assert max(seconds for _, seconds in fast) < 1.0 and fast_total < 2.0  # while the others wait on the predictor
        assert len(slow_results) == 4
        for response, seconds in slow_results:
            assert response.status_code == 504 and response.json()["error_type"] == "timeout"
            assert 1.9 < seconds < 4.0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and post_v1(front, unique(1)).status_code != 200:
            time.sleep(0.2)
        assert post_v1(front, unique(2)).status_code == 200  # recovered on its own
    finally:
        front.stop()
        backend.stop()


class SteadyLoad:
    """Threads sending one text per request, ``cached_share`` of them from ``cached``; every outcome recorded."""

    def __init__(self, url: str, cached: list[str], cached_share: float = 0.5, threads: int = 4):
        self.url, self.cached, self.cached_share = url, cached, cached_share
        self.results: list[tuple[float, float, bool, int, str]] = []  # (sent, seconds, cached, status, error_type)
        self.answers: list[tuple[str, str]] = []  # (text, x-cache), in step with results
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                is_cached = rng.random() < self.cached_share
                text = rng.choice(self.cached) if is_cached else f"fresh {uuid.uuid4().hex}"
                sent = time.monotonic()
                cache = ""
                try:
                    response = client.post("/v1/models/sentiment:predict", json={"instances": [text]})
                    status, cache = response.status_code, response.headers.get("x-cache", "")
                    error_type = response.json().get("error_type", "") if status != 200 else ""
                except httpx.HTTPError as exc:
                    status, error_type = 0, type(exc).__name__
                self.results.append((sent, time.monotonic() - sent, is_cached, status, error_type))
                self.answers.append((text, cache))
                time.sleep(0.01)

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def check_predictor_outage(results, killed_at: float, restarting_at: float, back_at: float, deadline_s: float) -> None:
    assert results, "no requests were sent"
    assert all(status != 0 for *_, status, _ in results), "a request failed at the connection level"
    assert max(seconds for _, seconds, *_ in results) < deadline_s + 1, "a request hung past its deadline"
    for sent, seconds, is_cached, status, error_type in results:
        if is_cached:
            assert status == 200, (sent, status, error_type)  # the cache answers without the predictor
        elif status != 200:
            assert (status, error_type) == (503, "predictor_unavailable")
            assert seconds < 1.5  # fast, not a wait for the deadline
    outage = [r for r in results if not r[2] and killed_at + 0.2 < r[0] < restarting_at]
    assert outage and all(r[3] == 503 for r in outage)
    recovered = [r for r in results if not r[2] and r[0] > back_at + 3]
    assert recovered and all(r[3] == 200 for r in recovered)  # on its own: nothing restarted the transformer


def predictor_killed_under_load(tiny_model_dir, redis, tmp_path, protocol: str) -> None:
    backend = ServerProcess("predictor", ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir),
                                          "--request_timeout_s", "4"], tmp_path / "predictor.log").start()
    front = transformer_for(backend, redis, tmp_path / "transformer.log", "--predictor_request_timeout_seconds", "5",
                            protocol=protocol).start()
    try:
        cached = unique(5)
        assert post_v1(front, cached).status_code == 200
        with SteadyLoad(front.url, cached) as load:
            time.sleep(1.5)
            killed_at = time.monotonic()
            backend.process.kill()  # SIGKILL: no goodbye
            backend.process.wait()
            time.sleep(2)
            restarting_at = time.monotonic()
            backend.start()  # same ports, as a new pod behind the same Service would be
            back_at = time.monotonic()
            time.sleep(4)
        check_predictor_outage(load.results, killed_at, restarting_at, back_at, deadline_s=5)
    finally:
        front.stop()
        backend.stop()


def test_predictor_killed_and_restarted_under_load_rest(tiny_model_dir, redis, tmp_path):
    predictor_killed_under_load(tiny_model_dir, redis, tmp_path, "v2")


@pytest.mark.chaos
def test_predictor_killed_and_restarted_under_load_grpc(tiny_model_dir, redis, tmp_path):
    predictor_killed_under_load(tiny_model_dir, redis, tmp_path, "grpc-v2")


@pytest.mark.chaos
def test_redis_killed_and_restarted_under_steady_load(predictor, tmp_path):
    """The load-bearing version of test_transformer's sequential one: four clients, Redis killed twice."""
    redis = RedisProcess(tmp_path / "redis.log").start()
    front = transformer_for(predictor, redis, tmp_path / "transformer.log", "--cache_reset_s", "0.3").start()
    try:
        cached = unique(5)
        post_v1(front, cached)
        with SteadyLoad(front.url, cached, cached_share=0.9) as load:
            for _ in range(2):
                time.sleep(1.5)
                redis.stop()
                time.sleep(1.5)
                redis.start()
            time.sleep(2)
        assert load.results and all(status == 200 for *_, status, _ in load.results), \
            {(s, e) for *_, s, e in load.results if s != 200}
        assert max(seconds for _, seconds, *_ in load.results) < 1.0
        assert cache_metric(front, "transformer_cache_errors_total", operation="get") >= 1
        time.sleep(0.5)
        post_v1(front, ["after the storm"])
        assert post_v1(front, ["after the storm"]).headers["x-cache"] == "hit"  # hits resumed (Redis lost everything)
    finally:
        front.stop()
        redis.stop()
