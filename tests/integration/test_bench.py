"""The benchmark's load generator against a real predictor: every request counted, errors never dropped."""

import json
import os
import subprocess
import sys

import pytest

from harness.processes import ROOT, SERVER_ENV, free_port
from tests.integration.servers import ServerProcess

pytestmark = pytest.mark.integration


def loadgen(url: str, texts, *extra: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.loadgen", "--url", url, "--texts", str(texts), *extra],
                          cwd=ROOT, env={**os.environ, **SERVER_ENV}, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "texts.txt"
    path.write_text("\n".join(f"sentence number {i} is a fine one" for i in range(5000)))
    return path


def test_closed_and_open_loops_count_every_request(tiny_model_dir, tmp_path, texts):
    server = ServerProcess("predictor", ["--model_name", "m", "--model_dir", str(tiny_model_dir)],
                           tmp_path / "p.log").start()
    try:
        url = f"{server.url}/v1/models/m:predict"
        closed = loadgen(url, texts, "--mode", "closed", "--concurrency", "4", "--duration_s", "1.5")
        opened = loadgen(url, texts, "--mode", "open", "--rate", "20", "--duration_s", "1.5")
    finally:
        server.stop()
    assert closed["requests"] > 4 and closed["errors"] == 0 and closed["statuses"] == {"200": closed["requests"]}
    assert closed["cold_texts_used"] == closed["requests"]  # one new text per request: all cache misses
    assert 10 <= opened["requests"] <= 60 and opened["errors"] == 0  # ~30 due at 20/s for 1.5 s
    assert 0 < closed["p50_ms"] <= closed["p99_ms"] <= closed["max_ms"]


def test_a_dead_server_is_all_errors_not_silence(texts):
    result = loadgen(f"http://127.0.0.1:{free_port()}/v1/models/m:predict", texts, "--mode", "open", "--rate", "20",
                     "--duration_s", "1", "--timeout_s", "2")
    assert result["requests"] > 0 and result["errors"] == result["requests"] and result["rps"] == 0
