"""``python -m bench.hit_calls``, the load-independent A/B of a request's cost, run on this checkout against itself.

Both sides run the same code (``--before HEAD``; CI's clone has no local changes), so
their counts must agree closely, which is what makes the A/B against another revision
worth reading: the tolerance below is far wider than the counters' own spread (about
±0.5% for instructions) and far narrower than any difference BENCHMARKS.md reports on.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from harness.processes import ROOT, SERVER_ENV

pytestmark = pytest.mark.integration

LINE = re.compile(r"^(calls|instructions) per (cached|uncached) request to the (\w+): HEAD ([\d,.]+), "
                  r"this checkout ([\d,.]+) \(([+-][\d.]+)%\)$", re.M)


def hit_calls(*args: str) -> re.Match:
    done = subprocess.run([sys.executable, "-m", "bench.hit_calls", "--before", "HEAD", *args], cwd=ROOT,
                          env={**os.environ, **SERVER_ENV}, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stderr[-3000:]
    found = LINE.search(done.stdout)
    assert found, done.stdout[-2000:]
    return found


def figures(found: re.Match) -> tuple[float, float]:
    return float(found[4].replace(",", "")), float(found[5].replace(",", ""))


@pytest.fixture(autouse=True)
def _clean_checkout():
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                             capture_output=True, text=True)
    if changed.returncode != 0:
        pytest.skip("not a git checkout: bench.hit_calls extracts the other side with git archive")
    if changed.stdout.strip():
        pytest.skip("the checkout has uncommitted changes: HEAD and the working tree differ")


def test_python_calls_per_cached_request_agree_for_the_same_code():
    found = hit_calls("--requests", "30", "--top", "5")
    assert found[1] == "calls" and found[2] == "cached" and found[3] == "transformer"
    before, after = figures(found)
    assert before > 500 and after > 500  # a whole request through uvicorn, KServe and ours: not a stub
    assert abs(after / before - 1) < 0.10


@pytest.mark.skipif(not (shutil.which("valgrind") and shutil.which("callgrind_control")),
                    reason="valgrind is not installed (apt-get install valgrind)")
def test_instructions_per_uncached_request_agree_for_the_same_code():
    found = hit_calls("--counter", "instructions", "--load", "miss", "--requests", "10")
    assert found[1] == "instructions" and found[2] == "uncached" and found[3] == "transformer"
    before, after = figures(found)
    assert before > 100_000 and after > 100_000  # counted only while instrumented: the requests, not start-up
    assert abs(after / before - 1) < 0.10
