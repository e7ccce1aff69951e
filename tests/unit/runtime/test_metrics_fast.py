"""runtime/metrics.py ``observe`` and ``inc`` leave what prometheus_client's own would."""

import math

from prometheus_client import CollectorRegistry, Counter, Histogram

from runtime.metrics import inc, observe


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
        observe(got, amount)
    assert _samples(theirs)[:-1] == _samples(ours)[:-1]  # the sum is NaN on both: NaN != NaN
    assert math.isnan(_samples(theirs)[-1][2]) and math.isnan(_samples(ours)[-1][2])


def test_inc_matches_prometheus():
    (theirs, ours), (expected, got) = _pair(Counter, "c")
    for amount in (1, 3, 0.5):
        expected.inc(amount)
        inc(got, amount)
    inc(got)
    expected.inc()
    assert _samples(theirs) == _samples(ours)
