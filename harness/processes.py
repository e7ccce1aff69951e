"""The one process harness of the benchmark, the soak and the integration tests.

``ServerProcess`` starts ``python -m <module>`` on ports of its own and returns once
the server's health endpoints say it is ready: ``/v2/health/ready`` answers 200 (what
the chart's readinessProbe asks) and, when it serves gRPC, the V2 ``ServerReady`` RPC
answers ready (KServe starts the gRPC server last, after every ``--workers`` process).
Nothing greps a log line. It records the cold start (spawn to the HTTP readiness
answer), samples RSS when asked, and restarts on the same ports (a new pod behind the
same Service). ``RedisProcess`` is a redis-server of our own, ready when it answers PING.

Ports: a port is picked below the kernel's ephemeral range, so that no client
connection of any process on the machine (they get ephemeral local ports) can take it
between the pick and the server's bind, and never handed out twice by one process; a
server that still loses its port to another process is started again on new ports.
"""

from __future__ import annotations

import errno
import io
import os
import random
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVER_ENV = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
PORT_IN_USE = ("address already in use", "errno 98", "failed to bind")  # uvicorn, redis-server, grpc
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    """Free on every address a server binds: uvicorn and redis-server bind IPv4, gRPC ``[::]``."""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family) as sock:
                sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE or family == socket.AF_INET:
                return False  # (no IPv6 on this machine is fine: gRPC then binds IPv4 only)
    return True


def free_port() -> int:
    """A TCP port nothing listens on, below the ephemeral range, not handed out before by this process."""
    low, _ = _ephemeral_range()
    candidates = range(max(10_000, low - 12_000), low)
    for _ in range(200):
        port = random.choice(candidates)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket() as sock:  # a machine that uses the whole low range: let the kernel choose
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


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _lost_its_port(log_tail: str) -> bool:
    return any(sign in log_tail.lower() for sign in PORT_IN_USE)


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

    def start(self, ready_timeout_s: float = 30) -> RedisProcess:
        """Spawn and wait for PONG; new port only if another process took it before the first start."""
        first = self.process is None
        for _ in range(3):
            command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", *self.extra]
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + ready_timeout_s
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                        sock.sendall(b"PING\r\n")
                        if sock.recv(16).startswith(b"+PONG"):
                            return self
                except OSError:
                    time.sleep(0.05)
            if self.process.poll() is None or not _lost_its_port(_tail(self.log_path, 500)):
                break
            if first:
                self.port = free_port()
            else:
                time.sleep(1)  # a restart keeps its port (the transformer knows it)
        self.stop()
        raise RuntimeError(f"redis-server did not start:\n{_tail(self.log_path, 2000)}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


_probe: httpx.Client | None = None


def _probe_client() -> httpx.Client:
    """One client for every readiness probe: making one (its SSL context) takes up to 0.7 s on a loaded machine."""
    global _probe
    if _probe is None:
        _probe = httpx.Client(timeout=2)
    return _probe


def grpc_server_ready(target: str, timeout_s: float = 1.0) -> bool:
    """The V2 protocol's ``ServerReady`` RPC, sent as raw bytes.

    No generated stubs: tritonclient.grpc and kserve register the same protobuf symbols
    (kserve/kserve#3099), and the harness must work beside either. The request message
    is empty; ``ServerReadyResponse{ready: true}`` is field 1, varint 1: ``08 01``.
    """
    import grpc

    with grpc.insecure_channel(target) as channel:
        ready = channel.unary_unary("/inference.GRPCInferenceService/ServerReady",
                                    request_serializer=lambda _: b"", response_deserializer=bytes)
        try:
            return ready(None, timeout=timeout_s) == b"\x08\x01"
        except grpc.RpcError:
            return False


def extract(rev: str, into: Path) -> Path:
    """The tree of ``rev`` in ``into``, as `git archive` gives it: another version's code to run beside this
    checkout's (``ServerProcess(root=...)``; bench/features.py, tracing.py, hit_calls.py)."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


class ServerProcess:
    """``python -m <module> <args> --http_port P [--grpc_port Q]``, logging to a file; ready on its health endpoints."""

    def __init__(self, module: str, args: list[str], log_path: Path, *, ready_path: str = "/v2/health/ready",
                 grpc: bool = True, sample_rss: bool = False, root: Path = ROOT, env: dict | None = None,
                 python: str = sys.executable):
        self.module, self.args, self.log_path = module, list(args), log_path
        self.python = python  # the interpreter (virtual environment): another checkout may pin other dependencies
        self.root = root  # the checkout whose code runs (bench/ab.py, bench/features.py, bench/tracing.py run two)
        self.ready_path, self.grpc, self.sample_rss = ready_path, grpc, sample_rss
        # The checkout's code runs from its own root; a peer (bench/peers) replaces both with its own.
        self.cwd, self.env = root, {**os.environ, **SERVER_ENV, "PYTHONPATH": str(root), **(env or {})}
        self._pick_ports()
        self.process: subprocess.Popen | None = None
        self.cold_start_s = float("nan")
        self.peak_rss_mb = 0.0
        self._sampling = threading.Event()

    def _pick_ports(self) -> None:
        self.http_port = free_port()
        self.grpc_port = free_port() if self.grpc else None

    @property
    def command(self) -> list[str]:
        ports = ["--http_port", str(self.http_port)] + (["--grpc_port", str(self.grpc_port)] if self.grpc else [])
        return [self.python, "-m", self.module, *self.args, *ports]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return _tail(self.log_path, sys.maxsize)

    def descendants(self) -> list:
        import psutil

        return psutil.Process(self.process.pid).children(recursive=True) if self.process else []

    def start(self, ready_timeout_s: float = 180) -> ServerProcess:
        """Spawn and wait until ready; new ports only if the server lost its own to another process (first start)."""
        first = self.process is None
        for _ in range(3):
            try:
                return self._spawn_and_wait(ready_timeout_s)
            except _PortLost:
                if not first:
                    time.sleep(1)  # a restart keeps its ports (clients know them): wait for the other to let go
                else:
                    self._pick_ports()
        raise RuntimeError(f"{self.command} could not bind its ports:\n{_tail(self.log_path)}")

    def _spawn_and_wait(self, ready_timeout_s: float) -> ServerProcess:
        self._sampling.clear()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        client = _probe_client()  # made before the spawn: not part of the cold start
        with self.log_path.open("ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        http_ready = False
        while time.perf_counter() - started < ready_timeout_s:
            if self.process.poll() is not None:
                tail = self.log_path.read_bytes()[offset:].decode(errors="replace")[-3000:]
                if _lost_its_port(tail):
                    raise _PortLost
                raise RuntimeError(f"{self.command} exited with {self.process.returncode}:\n{tail}")
            if not http_ready:
                try:
                    http_ready = client.get(self.url + self.ready_path).status_code == 200
                except httpx.HTTPError:
                    pass
                if http_ready:
                    self.cold_start_s = time.perf_counter() - started  # what a readiness probe would see
            if http_ready and (not self.grpc or grpc_server_ready(self.grpc_target)):
                if self.sample_rss:
                    threading.Thread(target=self._sample_rss, daemon=True).start()
                return self
            time.sleep(0.01 if not http_ready else 0.05)
        self.stop()
        raise RuntimeError(f"{self.command} not ready after {ready_timeout_s} s:\n{_tail(self.log_path)}")

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


class _PortLost(Exception):
    """The server exited because another process had bound one of its ports."""
