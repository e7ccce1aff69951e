"""bench/gpu.py runs end to end without a GPU (tiny model, the CPU backend standing in), so it still runs the day
a GPU machine is lent: every step, the table and the JSON the docs describe (docs/gpu.md)."""

import json
import subprocess
import sys

import pytest

from tests.integration.servers import ROOT, SERVER_ENV

pytestmark = pytest.mark.integration


def test_the_gpu_bench_runs_on_a_cpu_and_writes_its_figures(tmp_path):
    command = [sys.executable, "-m", "bench.gpu", "--device", "cpu", "--tiny", "--out", str(tmp_path),
               "--batches", "1,4", "--tokens", "16", "--forward_s", "0.2", "--clients", "2",
               "--texts_per_request", "1,4", "--duration_s", "1", "--workers", "2", "--loadgen_processes", "2",
               "--skip_cpu_served"]
    done = subprocess.run(command, cwd=ROOT, env={**SERVER_ENV, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert {(row["backend"], row["batch"]) for row in result["forward"]} == {
        (backend, batch) for backend in ("torch", "onnx-int8") for batch in (1, 4)}
    assert all(row["texts_per_s"] > 0 for row in result["forward"])
    served = {(row["texts_per_request"], row["clients"]): row for row in result["served"]}
    assert set(served) == {(1, 2), (4, 2)}
    for row in served.values():
        assert row["errors"] == 0 and row["rps"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0
        assert row["texts_per_s"] == pytest.approx(row["rps"] * row["texts_per_request"], rel=0.01)
    assert [row["workers"] for row in result["workers"]] == [2] and result["workers_needed"] == 2
    assert result["workers"][0]["errors"] == 0  # --workers 2: the torch backend reopened in each spawned worker
    for title in ("forward pass", "served (closed loop", "workers feeding the GPU"):
        assert title in done.stdout
