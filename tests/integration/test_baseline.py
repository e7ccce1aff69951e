"""The benchmark's baseline (the reference design) really runs: pipeline answers, whole-body Redis cache, 504."""

import pytest

from tests.integration.servers import HTTP, RedisProcess, ServerProcess

pytestmark = pytest.mark.integration


def start_baseline(model_dir, redis, log, *extra) -> ServerProcess:
    return ServerProcess("bench.baseline", ["--model_dir", str(model_dir), "--redis_url", redis.url, *extra], log,
                         ready_path="/health", grpc=False).start()


def test_baseline_answers_caches_whole_bodies_and_times_out(tiny_model_dir, tmp_path):
    redis = RedisProcess(tmp_path / "redis.log").start()
    server = start_baseline(tiny_model_dir, redis, tmp_path / "baseline.log")
    url = server.url
    try:
        body = {"instances": ["a wonderful film", "a dreadful film"]}
        first = HTTP.post(f"{url}/predict", json=body, timeout=30)
        assert first.status_code == 200 and first.headers["x-cache"] == "miss"
        predictions = first.json()["predictions"]
        assert len(predictions) == 2 and {s["label"] for s in predictions[0]} == {"NEGATIVE", "POSITIVE"}
        assert HTTP.post(f"{url}/predict", json=body).headers["x-cache"] == "hit"
        # whole-body keys: the same texts in another order are a miss (what per-text keys fix)
        swapped = HTTP.post(f"{url}/predict", json={"instances": body["instances"][::-1]})
        assert swapped.headers["x-cache"] == "miss"
    finally:
        server.stop()
    server = start_baseline(tiny_model_dir, redis, tmp_path / "slow.log", "--timeout_s", "0.001")
    try:
        assert HTTP.post(f"{server.url}/predict", json={"instances": ["x " * 300] * 200}, timeout=30).status_code == 504
    finally:
        server.stop()
        redis.stop()
