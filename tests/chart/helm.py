"""Run the pinned helm binary (installed into the virtualenv by `make setup`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "text-classifier"
BIN = Path(sys.executable).parent
VALUES_FILES = [None, *sorted(CHART.glob("values-*.yaml")), *sorted((CHART / "ci").glob("*-values.yaml"))]


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in {BIN}: run `make setup`")
    return str(path)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stderr}")
    return done


def template_args(values: Path | None = None, *sets: str, namespace: str = "text") -> list[str]:
    args = ["template", "demo", str(CHART), "--namespace", namespace]
    if values:
        args += ["-f", str(values)]
    for item in sets:
        args += ["--set", item]
    return args


def render(values: Path | None = None, *sets: str, namespace: str = "text") -> list[dict]:
    return [doc for doc in yaml.safe_load_all(helm(*template_args(values, *sets, namespace=namespace)).stdout) if doc]


def rejection(*sets: str) -> str:
    """What ``helm template`` prints for ``--set`` values the chart must refuse; fails if it accepts them."""
    done = helm(*template_args(None, *sets), check=False)
    assert done.returncode != 0, f"helm template accepted {sets}"
    return done.stderr


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def redis_secret(objects: list[dict]) -> dict:
    """The chart's Redis Secret (beside it, the cache key's: templates/cachekey.yaml)."""
    return next(obj for obj in by_kind(objects, "Secret") if obj["metadata"]["name"].endswith("-redis"))
