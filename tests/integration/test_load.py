"""The locust suite, headless against the real stack: all three protocols, its outputs, and the SLO gate."""

import csv
import subprocess
import sys

import pytest

from tests.integration.servers import ROOT, RedisProcess, ServerProcess, transformer_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tiny_model_dir, tmp_path_factory):
    logs = tmp_path_factory.mktemp("stack")
    redis = RedisProcess(logs / "redis.log").start()
    predictor = ServerProcess("predictor", ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir)],
                              logs / "predictor.log").start()
    transformer = transformer_for(predictor, redis, logs / "transformer.log").start()
    yield transformer
    for process in (transformer, predictor, redis):
        process.stop()


def run_load(transformer, out, *extra):
    return subprocess.run(
        [sys.executable, "load/run.py", "--host", transformer.url, "--grpc-host", transformer.grpc_target,
         "--peak-users", "3", "--ramp-s", "1", "--hold-s", "4", "--out", str(out), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )


def test_a_short_run_meets_the_slo_and_writes_every_report(stack, tmp_path):
    done = run_load(stack, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "SLO met" in done.stdout
    for name in ("stats_stats.csv", "stats_stats_history.csv", "report.html", "latency.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    with (tmp_path / "stats_stats.csv").open() as handle:
        names = {row["Name"] for row in csv.DictReader(handle)}
    assert {"V1 predict (sentiment)", "V2 infer (sentiment)", "V2 gRPC ModelInfer (sentiment)"} <= names


def test_a_broken_slo_exits_non_zero(stack, tmp_path):
    done = run_load(stack, tmp_path, "--slo-p99-ms", "0.001", "--protocols", "v1")
    assert done.returncode == 1 and "SLO BROKEN" in done.stderr
