"""The code passes the project's ruff rules (pinned in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_is_clean():
    done = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "contract", "runtime", "predictor", "modelbuild", "training", "harness",
                           "transformer", "rollout", "load", "bench", "scripts", "tests"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
