"""Start the project's real server processes on free ports, and stop them (Redis: bench/processes.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.processes import ROOT, SERVER_ENV, RedisProcess, free_port, terminate  # noqa: F401  (RedisProcess: for the tests)


class ServerProcess:
    """``python -m <module> <args>`` with --http_port/--grpc_port on free ports, logging to a file."""

    def __init__(self, module: str, args: list[str], log_path: Path):
        self.http_port, self.grpc_port = free_port(), free_port()
        self.command = [sys.executable, "-m", module, *args,
                        "--http_port", str(self.http_port), "--grpc_port", str(self.grpc_port)]
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def descendants(self) -> list:
        import psutil

        return psutil.Process(self.process.pid).children(recursive=True) if self.process else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, ready_timeout_s: float = 90) -> ServerProcess:
        env = {**os.environ, **SERVER_ENV}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                ready = httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                ready = False
            # With --workers, the first worker answers while the parent still starts the
            # others; the gRPC server starts last.
            if ready and "Starting gRPC server on" in self.log():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.command} not ready after {ready_timeout_s} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        terminate(self.process)


def triton_grpc_infer(target: str, model: str, texts: list) -> dict:
    """tritonclient.grpc's answer, from a subprocess (see triton_grpc_call.py for why)."""
    script = Path(__file__).with_name("triton_grpc_call.py")
    done = subprocess.run([sys.executable, str(script), target, model], input=json.dumps(texts),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample on ``url``/metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
