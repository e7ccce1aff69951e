"""A real Prometheus server (Debian's ``prometheus`` binary) scraping the test's processes, on a free port.

Each target carries the labels the chart's PodMonitor adds on a cluster (``namespace``,
``isvc``, ``component``, ``revision``), so the dashboard's and the verdict's queries
run unchanged. ``make setup`` copies the binary out of the Debian package into the
virtualenv (scripts/install-tools.sh); a system-wide one is used too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from harness.processes import free_port, terminate


def prometheus_binary() -> str | None:
    local = Path(sys.executable).parent / "prometheus"
    return str(local) if local.exists() else shutil.which("prometheus")


class PrometheusProcess:
    def __init__(self, workdir: Path, targets: list[tuple[str, dict]], scrape_interval: str = "1s"):
        self.workdir, self.port = workdir, free_port()
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [{"job_name": f"target-{i}", "static_configs": [{"targets": [address], "labels": labels}]}
                               for i, (address, labels) in enumerate(targets)],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> PrometheusProcess:
        command = [prometheus_binary(), f"--config.file={self.workdir / 'prometheus.yml'}",
                   f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"]
        with (self.workdir / "prometheus.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("prometheus not ready")

    def query(self, expr: str) -> list[dict]:
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(address, timeout=10) as reply:
            return json.load(reply)["data"]["result"]

    def targets_up(self) -> int:
        return sum(1 for row in self.query("up == 1"))

    def stop(self) -> None:
        terminate(self.process)
