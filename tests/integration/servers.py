"""Start the project's real server processes on free ports, and stop them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
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
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def triton_grpc_infer(target: str, model: str, texts: list) -> dict:
    """tritonclient.grpc's answer, from a subprocess (see triton_grpc_call.py for why)."""
    script = Path(__file__).with_name("triton_grpc_call.py")
    done = subprocess.run([sys.executable, str(script), target, model], input=json.dumps(texts),
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


class RedisProcess:
    """A real redis-server of our own on a free port (nothing persisted); restartable on the same port."""

    def __init__(self, log_path: Path, *extra: str):
        self.port = free_port()
        self.log_path = log_path
        self.extra = list(extra)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   *self.extra]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def metric(url: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample on ``url``/metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
