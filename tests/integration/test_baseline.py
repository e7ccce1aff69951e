"""The benchmark's baseline (the reference design) really runs: pipeline answers, whole-body Redis cache, 504."""

import subprocess
import sys
import time

import httpx
import pytest

from tests.integration.servers import ROOT, RedisProcess, free_port

pytestmark = pytest.mark.integration


def start_baseline(model_dir, redis, log, *extra):
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "bench.baseline", "--model_dir", str(model_dir),
                                    "--redis_url", redis.url, "--http_port", str(port), *extra],
                                   cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(log.read_text()[-2000:])


def test_baseline_answers_caches_whole_bodies_and_times_out(tiny_model_dir, tmp_path):
    redis = RedisProcess(tmp_path / "redis.log").start()
    process, url = start_baseline(tiny_model_dir, redis, tmp_path / "baseline.log")
    try:
        body = {"instances": ["a wonderful film", "a dreadful film"]}
        first = httpx.post(f"{url}/predict", json=body, timeout=30)
        assert first.status_code == 200 and first.headers["x-cache"] == "miss"
        predictions = first.json()["predictions"]
        assert len(predictions) == 2 and {s["label"] for s in predictions[0]} == {"NEGATIVE", "POSITIVE"}
        assert httpx.post(f"{url}/predict", json=body).headers["x-cache"] == "hit"
        # whole-body keys: the same texts in another order are a miss (what per-text keys fix)
        swapped = httpx.post(f"{url}/predict", json={"instances": body["instances"][::-1]})
        assert swapped.headers["x-cache"] == "miss"
    finally:
        process.kill()
    process, url = start_baseline(tiny_model_dir, redis, tmp_path / "slow.log", "--timeout_s", "0.001")
    try:
        assert httpx.post(f"{url}/predict", json={"instances": ["x " * 300] * 200}, timeout=30).status_code == 504
    finally:
        process.kill()
        redis.stop()
