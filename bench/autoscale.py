"""A day of traffic through the measured predictor curve under Knative's KPA and under an HPA on CPU.

One-second steps, deterministic (no randomness: the same inputs give the same day).
Only the predictor is simulated: it is what scales with misses and what cold starts
hurt; the transformer and Redis are sized by the planner for the peak.

**Traffic**: diurnal, ``base * (1 + 0.8 sin)`` with the trough at 04:00, and a spike to
``spike_factor`` times the traffic of that moment for ``spike_s`` seconds at 14:00.

**Serving**: ready pods share the model's texts/s; a pod's p99 at its load is read off
the measured curve (throughput against p99, interpolated); beyond its capacity the
queue grows and every queued text waits for the backlog to drain. Seconds whose p99
passes the SLO (or that have traffic and no ready pod) are SLO misses.

**Knative KPA** (Knative Serving v1.21; the defaults from its config-autoscaler ConfigMap,
../shared/crds/knative-serving-v1.21.1/configmap-config-autoscaler.yaml), every 2 s tick, as
pkg/autoscaler/scaling/autoscaler.go ``Scale`` (class ``Kpa``): the observed metric averaged per
second over the stable (60 s) and panic (6 s) windows; dspc/dppc = ceil(average / target), kept
within [floor(ready / max-scale-down-rate), ceil(ready * max-scale-up-rate)]; panic when
dppc / max(ready, 1) >= 200%, left only after a stable window without it, never scaling down
inside it; scale-down-delay (0 s by default) as the highest decision of its window; scale to
zero 30 s (the grace) after the decider first asks for 0. The metric is concurrency (the
chart's scaleMetric before issue 27, still predictor.scaleMetric=concurrency): the queue
(time-weighted over the second) plus Little's law at each pod's load, texts/s x latency_at;
or rps (arrivals per second; the chart's predictor default).
A new pod serves after the cold start from BENCHMARKS.md.
**HPA** (Kubernetes pkg/controller/podautoscaler/horizontal.go): every sync period
(15 s) desired = ceil(pods * utilization / target), utilization = used CPU / requested;
scale-down takes the highest recommendation of the stabilization window (300 s); no
scale to zero (min 1).

Guesses (not measured): the diurnal shape and spike timing; the CPU an idle predictor
pod uses (0); that a pod's latency at a load between two measured points is linear in
between (for the p99, and for the mean latency in flight / texts/s that gives the concurrency);
and the pod start from BENCHMARKS.md's
podman figure plus a pull.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

DAY_S = 86_400


@dataclass(frozen=True)
class Knobs:
    kind: str  # "kpa" or "hpa"
    min_pods: int = 0
    max_pods: int = 100
    target: float = 8.0  # KPA: in-flight per pod (the chart's scaleTarget); HPA: CPU utilization (0.7)
    utilization: float = 0.7  # KPA target-utilization-percentage
    stable_s: int = 60
    panic_s: int = 6
    panic_threshold: float = 2.0
    zero_grace_s: int = 30
    tick_s: int = 2  # KPA: config-autoscaler tick-interval
    max_scale_down_rate: float = 2.0  # KPA: max-scale-down-rate
    max_scale_up_rate: float = 1000.0  # KPA: max-scale-up-rate
    scale_down_delay_s: int = 0  # KPA: scale-down-delay
    metric: str = "concurrency"  # KPA: scaleMetric; "rps" scales on arrivals per second (target: texts/s per pod)
    sync_s: int = 15  # HPA
    stabilization_s: int = 300  # HPA scale-down


@dataclass
class Day:
    pods: list[int] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    slo_misses_s: int = 0
    cold_starts: int = 0
    pod_hours: float = 0.0


class Window:
    """The mean of the last ``size`` values added (a running sum: a day is 86,400 steps)."""

    def __init__(self, size: int):
        self.values: deque[float] = deque(maxlen=size)
        self.total = 0.0

    def add(self, value: float) -> float:
        if len(self.values) == self.values.maxlen:
            self.total -= self.values[0]
        self.values.append(value)
        self.total += value
        return self.total / len(self.values)


def diurnal(base_rps: float, spike_factor: float = 10.0, spike_s: int = 60, spike_at_s: int = 14 * 3600) -> list[float]:
    traffic = [base_rps * (1 + 0.8 * math.sin(2 * math.pi * (t - 10 * 3600) / DAY_S)) for t in range(DAY_S)]
    for t in range(spike_at_s, spike_at_s + spike_s):
        traffic[t] *= spike_factor
    return traffic


def rising(curve: dict, key: str) -> tuple[list[float], list[float]]:
    """(texts/s, ``key``) at the points where throughput rose with concurrency: on a busy machine a point
    can measure less than the one before it, and a pod never serves less by taking more in flight."""
    rates, values = [], []
    for rate, value in zip(curve["texts_per_s"], curve[key]):
        if not rates or rate > rates[-1]:
            rates.append(rate)
            values.append(value)
    return rates, values


def p99_at(curve: dict, load: float, key: str = "p99_ms") -> float:
    """A pod's p99 (or ``key``) at ``load`` texts/s, interpolated on the measured curve."""
    rates, p99s = rising(curve, key)
    if load <= rates[0]:
        return p99s[0]
    for (r0, p0), (r1, p1) in zip(zip(rates, p99s), zip(rates[1:], p99s[1:])):
        if load <= r1:
            return p0 + (p1 - p0) * (load - r0) / max(r1 - r0, 1e-9)
    return p99s[-1]


def latency_at(curve: dict, load: float) -> float:
    """A pod's mean time in system (s) at ``load`` texts/s: Little's law on each measured point (in flight /
    texts/s), linear in between, the lightest point's below it. Concurrency is then load x this latency, so
    it falls to 0 with the load instead of jumping from one measured in-flight step to the next."""
    rates, in_flight = rising(curve, "in_flight")
    latencies = [n / r for n, r in zip(in_flight, rates)]
    if load <= rates[0]:
        return latencies[0]
    for (r0, w0), (r1, w1) in zip(zip(rates, latencies), zip(rates[1:], latencies[1:])):
        if load <= r1:
            return w0 + (w1 - w0) * (load - r0) / max(r1 - r0, 1e-9)
    return latencies[-1]


@dataclass
class Kpa:
    """Knative Serving v1.21's decider, pkg/autoscaler/scaling/autoscaler.go ``(*autoscaler).Scale``, with the
    scale-to-zero gate of pkg/reconciler/autoscaling/kpa/scaler.go ``handleScaleToZero``."""

    knobs: Knobs
    panic_since: int | None = None  # a.panicTime: the last decision over the panic threshold
    max_panic_pods: int = 0  # a.maxPanicPods: in panic the count only rises
    idle_since: int | None = None  # when the decider first asked for 0 (the PA turns inactive)
    delay: deque = field(default_factory=deque)  # (time, desired): the scale-down-delay window

    def decide(self, t: int, ready: int, stable: float, panic: float) -> int:
        k = self.knobs
        target = k.target * k.utilization
        ready_count = max(1, ready)  # "Use 1 if there are zero current pods."
        max_up = math.ceil(k.max_scale_up_rate * ready_count)
        max_down = math.floor(ready_count / k.max_scale_down_rate)  # spec.Reachable: the revision takes traffic
        dspc, dppc = math.ceil(stable / target), math.ceil(panic / target)
        stable_pods, panic_pods = min(max(dspc, max_down), max_up), min(max(dppc, max_down), max_up)
        over = dppc / ready_count >= k.panic_threshold  # the rounded panic count, as upstream
        if over:
            self.panic_since = t  # enter, or extend: panic lasts a stable window after its last trigger
        elif self.panic_since is not None and self.panic_since + k.stable_s < t:
            self.panic_since, self.max_panic_pods = None, 0  # "the surge has made its way into the stable metric"
        desired = stable_pods
        if self.panic_since is not None:
            self.max_panic_pods = max(self.max_panic_pods, desired, panic_pods)  # no scale-down in panic
            desired = self.max_panic_pods
        if k.scale_down_delay_s:  # the max of the decisions within the delay window (delayWindow.Current)
            self.delay.append((t, desired))
            while self.delay[0][0] <= t - k.scale_down_delay_s:
                self.delay.popleft()
            desired = max(d for _, d in self.delay)
        # handleScaleToZero: the PA turns inactive when the decider asks for 0 and scales to 0 only after
        # the scale-to-zero grace period (the retention period, 0s by default, is not modelled)
        if desired == 0:
            self.idle_since = t if self.idle_since is None else self.idle_since
            if t - self.idle_since < k.zero_grace_s:
                desired = min(ready, 1)
        else:
            self.idle_since = None
        return desired


def simulate(curve: dict, texts_per_s: list[float], knobs: Knobs, cold_start_s: float, slo_ms: float) -> Day:
    capacity = max(curve["texts_per_s"])
    day, ready, starting = Day(), max(knobs.min_pods, 1 if knobs.kind == "hpa" else knobs.min_pods), []
    backlog = 0.0  # texts waiting beyond what ready pods absorb
    # KPA: observed concurrency per second, averaged over each window (pkg/autoscaler/aggregation/bucketing.go
    # TimedFloat64Buckets.WindowAverage: 1 s buckets, config.BucketSize; a partial window until it fills)
    stable_w, panic_w = Window(knobs.stable_s), Window(knobs.panic_s)
    kpa = Kpa(knobs)
    sync_w = Window(knobs.sync_s)  # HPA: CPU utilization per second
    recommendations: list[tuple[int, int]] = []  # HPA: (time, desired)
    for t, rate in enumerate(texts_per_s):
        ready += sum(1 for s in starting if s <= t)
        starting = [s for s in starting if s > t]
        before = backlog
        served = min(rate + backlog, ready * capacity)
        backlog = rate + backlog - served
        per_pod = served / ready if ready else 0.0
        latency_ms = p99_at(curve, per_pod) + (1000 * backlog / (ready * capacity) if ready else 0.0)
        if rate and (not ready or latency_ms > slo_ms):
            day.slo_misses_s += 1
            latency_ms = latency_ms if ready else 1000 * cold_start_s
        day.p99_ms.append(latency_ms if rate else 0.0)
        # the second's time-weighted in flight, as the queue-proxy reports it: the queued texts (the mean of
        # the queue at the second's start and end) plus Little's law at each pod's load
        concurrency = (before + backlog) / 2 + (served * latency_at(curve, per_pod) if ready else 0.0)
        total = ready + len(starting)
        if knobs.kind == "kpa":
            # the rps metric counts arrivals (collector.go record: the stat's RequestCount), which do not depend on
            # how many pods share them; concurrency does, through each pod's latency at its share
            observed = rate if knobs.metric == "rps" else concurrency
            stable, panic = stable_w.add(observed), panic_w.add(observed)
            if t % knobs.tick_s:  # the autoscaler decides every tick; the metrics are still collected every second
                day.pods.append(total)
                day.pod_hours += total / 3600
                continue
            desired = kpa.decide(t, ready, stable, panic)
        else:
            used = sync_w.add(per_pod / capacity if ready else 0.0)  # CPU busy share, a pod's request = its cores
            desired = total
            if t % knobs.sync_s == 0:
                want = math.ceil(max(ready, 1) * used / knobs.target)
                recommendations.append((t, want))
                recommendations = [(s, w) for s, w in recommendations if s > t - knobs.stabilization_s]
                recent = [w for _, w in recommendations]
                desired = want if want >= total else max(recent)
        desired = min(max(desired, knobs.min_pods if knobs.kind == "kpa" else max(knobs.min_pods, 1)), knobs.max_pods)
        if desired > total:
            starting += [t + math.ceil(cold_start_s)] * (desired - total)
            day.cold_starts += desired - total
        elif desired < total:
            drop = total - desired
            cancelled = min(drop, len(starting))
            starting = starting[:len(starting) - cancelled]
            ready -= drop - cancelled
        day.pods.append(ready + len(starting))
        day.pod_hours += (ready + len(starting)) / 3600
    return day
