"""Server processes for the benchmark and the integration tests: free ports, Redis, start-to-ready timing, RSS."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVER_ENV = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def terminate(process: subprocess.Popen | None, grace_s: float = 15) -> None:
    """SIGTERM (a graceful stop, as Kubernetes sends), then SIGKILL if it outlives ``grace_s``."""
    if process and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


class TimedServer:
    """``python -m <module> <args>``: started, timed from spawn to its ready URL answering 200, RSS sampled."""

    def __init__(self, module: str, args: list[str], ready_path: str, log_path: Path, port: int, root: Path = ROOT,
                 env: dict | None = None):
        self.command = [sys.executable, "-m", module, *args]
        # root: the checkout whose code runs (bench/features.py runs an older one beside this one)
        self.root, self.env = root, {**os.environ, **SERVER_ENV, "PYTHONPATH": str(root), **(env or {})}
        self.ready_path, self.log_path, self.port = ready_path, log_path, port
        self.process: subprocess.Popen | None = None
        self.cold_start_s = float("nan")
        self.peak_rss_mb = 0.0
        self._sampling = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180) -> TimedServer:
        with self.log_path.open("ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(self.command, cwd=self.root, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        with httpx.Client(timeout=0.5) as client:
            while time.perf_counter() - started < timeout_s:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.command} exited:\n{self.log_path.read_text()[-3000:]}")
                try:
                    if client.get(self.url + self.ready_path).status_code == 200:
                        self.cold_start_s = time.perf_counter() - started
                        threading.Thread(target=self._sample_rss, daemon=True).start()
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.command} not ready after {timeout_s} s")

    def rss_mb(self) -> float:
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            return sum(p.memory_info().rss for p in (root, *root.children(recursive=True))) / 2**20
        except psutil.Error:
            return 0.0

    def _sample_rss(self) -> None:
        while not self._sampling.wait(0.1):
            self.peak_rss_mb = max(self.peak_rss_mb, self.rss_mb())

    def stop(self) -> None:
        self._sampling.set()
        terminate(self.process)
