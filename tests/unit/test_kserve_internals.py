"""KServe's internals that runtime/kserve_internals.py copies or overrides are still the ones it was written against.

A KServe (or uvicorn) upgrade that changes one of them fails here, loudly, naming
it: re-read the upstream function, bring the copy or override in step, then update
its hash in ``UPSTREAM``.
"""

import hashlib
import importlib
import importlib.metadata
import inspect
from pathlib import Path

import pytest

from runtime.kserve_internals import KSERVE_VERSION, UPSTREAM

ROOT = Path(__file__).resolve().parents[2]


def upstream(dotted: str):
    """The object a dotted name names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


def source_hash(obj) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def test_the_pinned_kserve_is_installed_and_declared():
    assert importlib.metadata.version("kserve") == KSERVE_VERSION
    assert f'"kserve=={KSERVE_VERSION}"' in (ROOT / "pyproject.toml").read_text()
    assert f"kserve=={KSERVE_VERSION}\n" in (ROOT / "requirements.lock").read_text()


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_upstream_source_is_unchanged(name):
    assert source_hash(upstream(name)) == UPSTREAM[name], (
        f"{name} changed upstream (sha256 prefix now {source_hash(upstream(name))}): "
        "re-read it against runtime/kserve_internals.py, then update UPSTREAM"
    )


def test_a_changed_function_would_be_noticed():
    assert source_hash(upstream("runtime.kserve_internals.ModelServer.start")) != UPSTREAM[
        "kserve.model_server.ModelServer.start"]
