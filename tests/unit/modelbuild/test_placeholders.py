"""The images' stand-ins for kubernetes and pandas: `import kserve` works without them, any real use fails clearly."""

import subprocess
import sys
from pathlib import Path

import pytest

from modelbuild.files import NotServable, require_torch

PLACEHOLDERS = Path(__file__).resolve().parents[3] / "images" / "placeholders"


def run_with_placeholders_first(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter whose sys.path has the placeholders ahead of the real packages."""
    prelude = f"import sys; sys.path.insert(0, {str(PLACEHOLDERS)!r})\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120,
                          check=False)


def test_kserve_imports_and_serves_its_types_with_the_placeholders():
    done = run_with_placeholders_first(
        "import kserve, kubernetes, pandas\n"
        "from kserve.protocol.infer_type import InferInput\n"
        "assert kubernetes.__file__.startswith(sys.path[0]) and pandas.__file__.startswith(sys.path[0])\n"
        "InferInput('text', [1], 'BYTES', ['works'])\n"
        "print('ok')\n")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("use, missing", [
    ("from kubernetes import client\nclient.CoreV1Api()", "kubernetes"),
    ("import pandas\npandas.DataFrame({'a': [1]})", "pandas"),
    ("import pandas\npandas.concat([])", "pandas"),
])
def test_any_real_use_names_the_missing_package(use, missing):
    done = run_with_placeholders_first(use)
    assert done.returncode == 1
    assert f"ModuleNotFoundError: {missing}." in done.stderr and "is not installed in this image" in done.stderr


def test_a_model_that_needs_torch_says_how_to_bake_it(tmp_path):
    with pytest.raises(NotServable) as raised:
        require_torch(tmp_path, "has no baked ONNX graph", ("no_such_package_here",))
    message = str(raised.value)
    assert "no_such_package_here" in message and f"python -m modelbuild.bake --model_dir {tmp_path} --out" in message
    require_torch(tmp_path, "needs nothing missing", ("json",))  # present: no error
