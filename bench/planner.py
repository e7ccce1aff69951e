"""The capacity planner's arithmetic: measured per-pod curves and a traffic in, pods, shards, nodes and dollars out.

Everything here is a pure function of the curves file (bench/capacity_measure.py) and
the price table (bench/capacity/prices.json), so tests/unit/bench/test_planner.py checks it
with small made-up curves. The model, and which parts of it are guesses:

- **predictor**: a pod serves the texts that miss the cache. Its capacity is the
  highest point of the measured texts/s-vs-in-flight curve whose p99, scaled by the
  text length against the measured mean (cost grows with tokens: linear, a guess for
  long texts) plus the transformer's share, stays under the SLO; pods run at
  ``UTILIZATION`` of it (Knative's default target, 70%).
- **transformer**: CPU per request measured for a hit and a miss; a request is a hit
  when all its texts are (independent texts: ``cache_rate ** texts``); each text past
  the first costs ``EXTRA_TEXT_SHARE`` of a one-text hit (a guess, not measured).
  Pods of the chart's 1-CPU limit at ``UTILIZATION``.
- **Redis**: one MGET per request and one SET per missed text; a shard is kept under
  ``REDIS_BUSY`` of the commands/s ``redis-benchmark`` measured (a guess of headroom).
- **nodes**: pods packed by CPU per node type (allocatable = vCPUs minus
  ``RESERVED_CPU``, a guess of kubelet and system reservations).
- **seed design**: one FastAPI pod of 2 CPUs does everything; capacity within the SLO
  from its measured uncached rate as an M/M/1 queue (p99 = ln(100) / (mu - lambda)),
  hits costing what its 95% mix implies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

UTILIZATION = 0.7  # Knative's container-concurrency-target-percentage default, and the HPA's 70% CPU
EXTRA_TEXT_SHARE = 0.1  # guess: CPU of each further text in a request, as a share of a one-text hit
REDIS_BUSY = 0.5  # guess: keep a shard at half its measured command rate (latency, failover headroom)
RESERVED_CPU = 0.2  # guess: vCPUs per node kept by kubelet, the OS and daemon sets
REDIS_CPU = 1.0  # a Redis shard's pod: single-threaded, one core
OVERHEAD_MS = 5.0  # guess: the transformer, Redis and the network in a miss's latency, besides the model


@dataclass(frozen=True)
class Traffic:
    rps: float
    texts_per_request: float = 1.0
    cache_rate: float = 0.95  # share of texts found in the cache
    text_chars: float | None = None  # None: the curve's own mean length
    p99_slo_ms: float = 200.0


@dataclass(frozen=True)
class Plan:
    predictors: int
    transformers: int
    redis_shards: int
    cpu: float  # CPUs the pods take (their limits)
    nodes: dict  # instance type -> nodes
    dollars_per_hour: dict  # instance type -> (on-demand, spot)
    answers_per_hour: float


def predictor_capacity(curve: dict, slo_ms: float, length_factor: float = 1.0) -> float:
    """Texts/s one predictor pod sustains within the SLO (0 when even one in flight misses it)."""
    best = 0.0
    for texts_per_s, p99 in zip(curve["texts_per_s"], curve["p99_ms"]):
        if p99 * length_factor + OVERHEAD_MS <= slo_ms:
            best = max(best, texts_per_s / length_factor)
    return best


def request_hit_rate(traffic: Traffic) -> float:
    """A request skips the model only when every one of its texts is cached."""
    return traffic.cache_rate ** max(1.0, traffic.texts_per_request)


def transformer_cpu_per_request(costs: dict, traffic: Traffic) -> float:
    hit, miss = costs["hit"]["cpu_s_per_request"], costs["miss"]["cpu_s_per_request"]
    all_hit = request_hit_rate(traffic)
    extra = max(0.0, traffic.texts_per_request - 1) * EXTRA_TEXT_SHARE * hit
    return all_hit * hit + (1 - all_hit) * miss + extra


def redis_shards(redis: dict, traffic: Traffic) -> int:
    busy = traffic.rps / redis["mget_per_s"] + traffic.rps * traffic.texts_per_request * (1 - traffic.cache_rate) \
        / redis["set_per_s"]
    return max(1, math.ceil(busy / REDIS_BUSY))


def nodes_for(pods: list[tuple[int, float]], vcpus: int) -> int:
    """Nodes of ``vcpus`` for ``pods`` (count, CPUs each), first-fit by decreasing size."""
    free: list[float] = []
    allocatable = vcpus - RESERVED_CPU
    for count, cpu in sorted(pods, key=lambda pod: -pod[1]):
        if cpu > allocatable:
            return 0  # does not fit this type at all
        for _ in range(count):
            for index, room in enumerate(free):
                if room >= cpu - 1e-9:
                    free[index] -= cpu
                    break
            else:
                free.append(allocatable - cpu)
    return len(free)


def price(pods: list[tuple[int, float]], prices: dict) -> tuple[dict, dict]:
    nodes, dollars = {}, {}
    for name, kind in prices["types"].items():
        count = nodes_for(pods, kind["vcpus"])
        if count:
            nodes[name] = count
            dollars[name] = (round(count * kind["on_demand"], 4), round(count * kind["spot"], 4))
    return nodes, dollars


def plan(curves: dict, prices: dict, traffic: Traffic) -> Plan:
    length = (traffic.text_chars or curves["predictor"]["mean_chars"]) / curves["predictor"]["mean_chars"]
    per_pod = predictor_capacity(curves["predictor"], traffic.p99_slo_ms, max(length, 0.25)) * UTILIZATION
    model_texts = traffic.rps * traffic.texts_per_request * (1 - traffic.cache_rate)
    predictors = math.ceil(model_texts / per_pod) if per_pod else 0
    cpu_demand = traffic.rps * transformer_cpu_per_request(curves["transformer"], traffic)
    transformers = max(1, math.ceil(cpu_demand / (curves["transformer"]["cpu"] * UTILIZATION)))
    shards = redis_shards(curves["redis"], traffic)
    pods = [(predictors, float(curves["predictor"]["cpu"])), (transformers, float(curves["transformer"]["cpu"])),
            (shards, REDIS_CPU)]
    nodes, dollars = price(pods, prices)
    return Plan(predictors, transformers, shards, sum(n * c for n, c in pods), nodes, dollars, answers_per_hour(traffic))


def seed_capacity(seed: dict, traffic: Traffic) -> float:
    """Requests/s one seed pod answers within the SLO: misses queue on one pipeline (M/M/1), hits cost little."""
    mu = seed["uncached_rps_per_pod"]  # misses/s when all are misses
    hit_rate = request_hit_rate(traffic)  # whole-body cache: a body is a hit only if all its texts were seen together
    # a hit's cost in pod-seconds, from the measured mix: 1 = mix * (h/hit_speed + (1-h)/mu)
    mix, h = seed["mix_rps_per_pod"], seed["mix_cache_rate"]
    hit_cost = max(1e-6, (1 / mix - (1 - h) / mu) / h)
    miss_cost = traffic.texts_per_request / mu
    cost = hit_rate * hit_cost + (1 - hit_rate) * miss_cost  # pod-seconds per request
    # M/M/1 on the average service: p99 of time in system = ln(100) * service / (1 - rho) <= SLO
    slo_s = traffic.p99_slo_ms / 1000
    rho = 1 - math.log(100) * cost / slo_s
    return max(0.0, rho / cost)


def seed_plan(curves: dict, prices: dict, traffic: Traffic) -> Plan:
    seed = curves["seed"]
    per_pod = seed_capacity(seed, traffic)
    pods_n = math.ceil(traffic.rps / per_pod) if per_pod else 0
    shards = redis_shards(curves["redis"], Traffic(traffic.rps, 1.0, traffic.cache_rate))  # one GET, one SET per miss
    pods = [(pods_n, float(seed["pod_cpu"])), (shards, REDIS_CPU)]
    nodes, dollars = price(pods, prices)
    return Plan(pods_n, 0, shards, sum(n * c for n, c in pods), nodes, dollars, answers_per_hour(traffic))


def per_million(dollars_per_hour: float, answers_per_hour: float) -> float:
    return dollars_per_hour / answers_per_hour * 1e6 if answers_per_hour else float("nan")


def cheapest(result: Plan, spot: bool = False) -> tuple[str, float]:
    """(instance type, $/hour) of the cheapest fit."""
    index = 1 if spot else 0
    name = min(result.dollars_per_hour, key=lambda n: result.dollars_per_hour[n][index])
    return name, result.dollars_per_hour[name][index]


def answers_per_hour(traffic: Traffic) -> float:
    """An answer is one text's result (what the chart's "$ per million answers" panel counts)."""
    return traffic.rps * traffic.texts_per_request * 3600
