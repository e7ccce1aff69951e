"""KServe's internals that runtime/kserve/ copies or overrides are still the ones it was written against,
and runtime/kserve/ is the only place that imports KServe.

A KServe (or uvicorn) upgrade that changes one of them fails here, loudly, naming
it: re-read the upstream function, bring the copy or override in step, then update
its pin in runtime/kserve/pins.py (``UPSTREAM``, ``SIGNATURES``).
"""

import ast
import hashlib
import importlib
import importlib.metadata
import inspect
from pathlib import Path

import pytest

from runtime.kserve.pins import KSERVE_VERSION, SIGNATURES, UPSTREAM

ROOT = Path(__file__).resolve().parents[3]


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
    assert f"\nkserve=={KSERVE_VERSION} \\\n" in (ROOT / "requirements.lock").read_text()  # then its hashes


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_upstream_source_is_unchanged(name):
    assert source_hash(upstream(name)) == UPSTREAM[name], (
        f"{name} changed upstream (sha256 prefix now {source_hash(upstream(name))}): "
        "re-read it against runtime/kserve/, then update UPSTREAM"
    )


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_the_hooks_we_override_keep_their_signature(name):
    """KServe calls our model face's hooks by these parameters; a renamed or added one must be seen here."""
    assert str(inspect.signature(upstream(name))) == SIGNATURES[name], (
        f"{name}'s signature changed upstream: re-read runtime/kserve/ and the model faces, then update SIGNATURES"
    )


# Empty: the V2 request and response objects are read and written in runtime/kserve/codec.py (issue 25).
NOT_YET_FENCED: set[str] = set()
SHIPPED = ("contract", "runtime", "predictor", "modelbuild", "training", "transformer", "rollout")


def imports_kserve(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        if any(name == "kserve" or name.startswith("kserve.") for name in names):
            return True
    return False


def test_only_the_fence_imports_kserve():
    outside = {str(path.relative_to(ROOT)) for package in SHIPPED for path in sorted((ROOT / package).rglob("*.py"))
               if "runtime/kserve" not in path.as_posix() and imports_kserve(path)}
    assert outside == NOT_YET_FENCED


def test_the_fence_check_sees_an_import(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    from kserve.protocol import infer_type\n")
    assert imports_kserve(tmp_path / "m.py")
