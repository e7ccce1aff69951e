"""The images, run as the chart runs them: each rendered container's image, args, env, securityContext and limits.

Everything comes from ``helm template`` (with ``image.registry`` set to where ``make
images`` tags the images); only what a cluster provides is substituted: the Redis
Secret's URL (a local redis-server), KServe's ``--predictor_host``, and free ports
(appended, so they win), since the containers share the host's network here. The
engine is scripts/engine.sh (podman or docker, with this machine kind's flags).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from harness.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ["bash", str(ROOT / "scripts" / "engine.sh")]
REGISTRY = "localhost/kserve-text-classifier"
CHART = ROOT / "charts" / "text-classifier"
ENGINE_MOUNTS = {"/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/run/.containerenv",
                 "/run/secrets", "/dev", "/proc", "/sys"}


def engine(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run([*ENGINE, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"engine {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


def engine_name() -> str | None:
    """podman or docker when one can run here, else None."""
    done = subprocess.run([*ENGINE, "--name"], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def image_bytes(image: str) -> int | None:
    done = engine("image", "inspect", "--format", "{{.Size}}", image, check=False)
    return int(done.stdout.strip()) if done.returncode == 0 else None


def rendered(*sets: str, values: Path | None = None) -> dict[str, dict]:
    """InferenceServices by name, from ``helm template`` with the local registry."""
    helm = Path(sys.executable).parent / "helm"
    command = [str(helm), "template", "demo", str(CHART), "--namespace", "text", "--set", f"image.registry={REGISTRY}"]
    for item in sets:
        command += ["--set", item]
    if values:
        command += ["-f", str(values)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout
    return {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(out) if doc and doc["kind"] == "InferenceService"}


def _engine_memory(quantity: str) -> str:
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(quantity)).groups()
    return number + {"Ki": "k", "Mi": "m", "Gi": "g", None: "b"}[unit]


def _engine_cpus(quantity: str) -> str:
    text = str(quantity)
    return str(int(text[:-1]) / 1000) if text.endswith("m") else text


@dataclass
class Spec:
    """One rendered container, as the engine's flags: what the pod's securityContext and limits say."""

    image: str
    args: list[str]
    env: dict[str, str]
    secret_env: list[str]  # names whose value comes from a Secret (here: substituted by the caller)
    flags: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, component: dict, container_name: str | None = None) -> Spec:
        containers = component["containers"]
        container = next(c for c in containers if c["name"] == container_name) if container_name else containers[0]
        security = container["securityContext"]
        assert security["runAsNonRoot"] and security["runAsUser"] != 0
        flags = ["--user", str(security["runAsUser"])]
        if security.get("readOnlyRootFilesystem"):
            flags.append("--read-only")
        flags += [f"--cap-drop={cap}" for cap in security["capabilities"]["drop"]]
        if security.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        volumes = {v["name"]: v for v in component.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:  # the pod's only writable place
                size = _engine_memory(volume["emptyDir"]["sizeLimit"])
                flags += ["--tmpfs", f"{mount['mountPath']}:rw,size={size},mode=1777"]
        limits = container.get("resources", {}).get("limits", {})
        if "memory" in limits:
            flags += ["--memory", _engine_memory(limits["memory"])]
        if "cpu" in limits:
            flags += ["--cpus", _engine_cpus(limits["cpu"])]
        env = {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
        secret_env = [item["name"] for item in container.get("env", []) if "valueFrom" in item]
        return cls(container["image"], list(container["args"]), env, secret_env, flags)


class Container:
    """``engine run -d`` of a Spec on the host's network, timed from the run to its readiness."""

    def __init__(self, spec: Spec, extra_args: list[str] = (), env: dict[str, str] | None = None,
                 mounts: list[str] = (), http_port: int | None = None, prefix: str = "tc"):
        self.spec, self.extra_args, self.mounts = spec, list(extra_args), list(mounts)
        self.env = {**spec.env, **(env or {})}
        missing = set(spec.secret_env) - set(self.env)
        assert not missing, f"no value for the Secret-backed env {missing}"
        self.http_port = http_port
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.started_at = float("nan")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def run(self) -> Container:
        env_flags = [flag for key, value in self.env.items() for flag in ("-e", f"{key}={value}")]
        mount_flags = [flag for mount in self.mounts for flag in ("-v", mount)]
        self.started_at = time.monotonic()
        engine("run", "-d", "--name", self.name, "--network", "host", *self.spec.flags, *env_flags, *mount_flags,
               self.spec.image, *self.spec.args, *self.extra_args, timeout=180)
        return self

    def running(self) -> bool:
        done = engine("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return done.stdout.strip() == "true"

    def wait_ready(self, timeout_s: float = 180, path: str = "/v2/health/ready") -> float:
        """Seconds from ``run`` until ``path`` answers 200 (raises with the log if it exits or times out)."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=1) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get(f"{self.url}{path}").status_code == 200:
                        return time.monotonic() - self.started_at
                except httpx.HTTPError:
                    pass
                if not self.running():
                    raise RuntimeError(f"{self.name} ({self.spec.image}) exited:\n{self.logs()[-3000:]}")
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s:\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        done = engine("logs", self.name, check=False)
        return done.stdout + done.stderr

    def exec(self, *command: str) -> str:
        return engine("exec", self.name, *command).stdout

    def pid1_status(self) -> dict[str, str]:
        """/proc/1/status inside the container: Python is PID 1 (Uid, VmHWM = its peak RSS)."""
        lines = self.exec("cat", "/proc/1/status").splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def peak_rss_mb(self) -> float:
        return int(self.pid1_status()["VmHWM"].split()[0]) / 1024

    def changed_paths(self) -> list[str]:
        """What the container changed in its image's filesystem (``engine diff``), /tmp excluded.

        The engine's own bind mounts (/etc/hosts, /etc/resolv.conf, /run/.containerenv)
        show up as a changed /etc or /run directory: those are not the container's writes.
        """
        done = engine("diff", self.name, check=False)
        paths = [line.split(maxsplit=1)[-1] for line in done.stdout.splitlines() if line.strip()]
        return [p for p in paths if p.split("/")[1] != "tmp" and p not in ENGINE_MOUNTS]

    def signal(self, name: str = "TERM") -> None:
        engine("kill", "--signal", name, self.name)

    def wait_exit(self, timeout_s: float = 60) -> int:
        done = engine("wait", self.name, timeout=timeout_s + 10)
        return int(done.stdout.strip().splitlines()[-1])

    def remove(self) -> None:
        engine("rm", "-f", "-t", "0", self.name, check=False, timeout=60)


def predictor_container(component: dict, *extra: str, container: str | None = None, **kwargs) -> Container:
    """The rendered predictor container on free ports (appended: they win over the chart's 8080/8081)."""
    http_port, grpc_port = free_port(), free_port()
    run = Container(Spec.of(component, container), [*extra, f"--http_port={http_port}", f"--grpc_port={grpc_port}"],
                    http_port=http_port, prefix="tc-predictor", **kwargs)
    run.grpc_port = grpc_port
    return run


def transformer_container(component: dict, redis_url: str, predictor_host: str, *extra: str,
                          container: str | None = None) -> Container:
    """The rendered transformer container; its Redis Secret's URL and KServe's --predictor_host substituted."""
    spec = Spec.of(component, container)
    http_port, grpc_port = free_port(), free_port()
    run = Container(spec, [f"--predictor_host={predictor_host}", *extra, f"--http_port={http_port}",
                           f"--grpc_port={grpc_port}"],
                    env={name: redis_url for name in spec.secret_env}, http_port=http_port, prefix="tc-transformer")
    run.grpc_port = grpc_port
    return run
