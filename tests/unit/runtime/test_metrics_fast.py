"""runtime/metrics.py ``write`` of ``observed`` and ``counted`` leaves what prometheus_client's own would."""

import math

from prometheus_client import CollectorRegistry, Counter, Histogram

from runtime.metrics import counted, observed, write


def _samples(registry: CollectorRegistry) -> list:
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value) for family in registry.collect()
                  for s in family.samples if not s.name.endswith("_created"))


def _pair(kind, name: str, **options):
    registries = CollectorRegistry(), CollectorRegistry()
    return registries, [kind(name, "doc", ["model"], registry=r, **options).labels("m") for r in registries]


def test_observe_matches_prometheus_on_every_bound_between_and_beyond():
    (theirs, ours), (expected, got) = _pair(Histogram, "h", buckets=(0.001, 0.01, 0.1, 1.0))
    for amount in (0.0, 0.0005, 0.001, 0.0011, 0.01, 0.5, 1.0, 7.0, -1.0, math.inf, math.nan):
        expected.observe(amount)
        write(observed(got, amount))
    assert _samples(theirs)[:-1] == _samples(ours)[:-1]  # the sum is NaN on both: NaN != NaN
    assert math.isnan(_samples(theirs)[-1][2]) and math.isnan(_samples(ours)[-1][2])


def test_inc_matches_prometheus():
    (theirs, ours), (expected, got) = _pair(Counter, "c")
    for amount in (1, 3, 0.5):
        expected.inc(amount)
        write([counted(got, amount)])
    write([counted(got)])
    expected.inc()
    assert _samples(theirs) == _samples(ours)


MULTIPROCESS = """
import math, sys
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from runtime.metrics import counted, observed, write

assert write.__name__ == "write", write  # the batched multiprocess writer, not inc per update
pairs = [(kind("theirs_" + name, "doc", ["model"], **options).labels("m"),
          kind("ours_" + name, "doc", ["model"], **options).labels("m"))
         for kind, name, options in ((Counter, "c", {}), (Histogram, "h", {"buckets": (0.001, 0.1, 1.0)}))]
(their_c, our_c), (their_h, our_h) = pairs
for amount in (0.0, 0.0005, 0.001, 0.05, 0.1, 0.5, 7.0, -1.0, math.inf):
    their_c.inc(abs(amount) if amount != math.inf else 1)
    their_h.observe(amount)
    write([counted(our_c, abs(amount) if amount != math.inf else 1), *observed(our_h, amount)])
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
samples = {}
for family in registry.collect():
    for s in family.samples:
        side, name = s.name.split("_", 1)
        samples.setdefault(side, set()).add((name, tuple(sorted(s.labels.items())), s.value))
assert samples["ours"] == samples["theirs"], samples
print("equal", len(samples["ours"]))
"""


def test_write_in_multiprocess_mode_leaves_the_files_inc_would(tmp_path):
    """In Prometheus multiprocess mode (chosen at import: a process of its own), ``write`` puts in the
    files what prometheus_client's ``inc``/``observe`` put there, read back as /metrics reads them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", MULTIPROCESS], capture_output=True, text=True, cwd=root, timeout=60,
                          env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("equal")
