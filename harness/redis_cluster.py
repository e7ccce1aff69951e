"""A real local Redis Cluster: three ``redis-server --cluster-enabled yes`` masters joined by ``redis-cli --cluster create``.

For the integration tests and the benchmark: free ports, a temp dir per node, nothing
persisted; any master can be killed (and restarted on its port) to play a node failure.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from harness.processes import RedisProcess, free_port


def _answers(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        sock.sendall(command)
        return sock.recv(65536)


class ClusterNode(RedisProcess):
    """One cluster master: its own directory (nodes.conf lives there) and an explicit bus port."""

    def __init__(self, directory: Path, node_timeout_ms: int):
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(directory / "redis.log", "--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                         "--cluster-config-file", str(directory / "nodes.conf"),
                         "--cluster-node-timeout", str(node_timeout_ms), "--dir", str(directory))


class RedisClusterProcess:
    def __init__(self, directory: Path, masters: int = 3, node_timeout_ms: int = 1000, require_full_coverage=False):
        self.directory = directory
        self.require_full_coverage = require_full_coverage
        self.nodes = [ClusterNode(directory / f"node-{i}", node_timeout_ms) for i in range(masters)]

    @property
    def url(self) -> str:
        """Any one node: the client discovers the others (redis+cluster:// tells the transformer it is a cluster)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self, timeout_s: float = 30) -> RedisClusterProcess:
        if not shutil.which("redis-cli"):
            raise RuntimeError("redis-cli is not installed (Debian: apt-get install redis-tools)")
        for node in self.nodes:
            node.extra += ["--cluster-require-full-coverage", "yes" if self.require_full_coverage else "no"]
            node.start()
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in self.nodes),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        self.wait_until_ok(timeout_s)
        return self

    def wait_until_ok(self, timeout_s: float = 30) -> None:
        """Until every running node says cluster_state:ok (the slots are assigned and the bus agrees)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                alive = [node for node in self.nodes if node.process and node.process.poll() is None]
                if all(b"cluster_state:ok" in _answers(node.port, b"CLUSTER INFO\r\n") for node in alive):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the cluster is not ok after {timeout_s} s: {[n.log_path for n in self.nodes]}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
