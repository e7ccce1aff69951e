"""Start the project's real server processes on free ports, and stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import json

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

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, ready_timeout_s: float = 90) -> "ServerProcess":
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
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
