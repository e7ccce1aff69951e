"""The capacity planner's arithmetic (bench/planner.py) and the autoscaling simulator (bench/autoscale.py)."""

import json

import pytest

from bench import autoscale, planner
from bench.capacity import HERE

CURVES = {
    "predictor": {"cpu": 2, "in_flight": [1, 8, 32], "texts_per_s": [100.0, 200.0, 250.0],
                  "p50_ms": [10.0, 40.0, 130.0], "p99_ms": [20.0, 100.0, 300.0], "mean_chars": 50.0},
    "transformer": {"cpu": 1, "hit": {"cpu_s_per_request": 0.0001}, "miss": {"cpu_s_per_request": 0.001}},
    "redis": {"mget_per_s": 100_000.0, "set_per_s": 100_000.0},
    "seed": {"uncached_rps_per_pod": 30.0, "pod_cpu": 2, "mix_rps_per_pod": 250.0, "mix_cache_rate": 0.95},
    "cold_starts": {"predictor_s": 1.5, "predictor_pull_s": 1.5},
}
PRICES = {"types": {"small": {"vcpus": 4, "on_demand": 0.2, "spot": 0.08},
                    "big": {"vcpus": 16, "on_demand": 0.8, "spot": 0.3}}}


def test_predictor_capacity_is_the_best_point_within_the_slo():
    assert planner.predictor_capacity(CURVES["predictor"], 200) == 200.0  # 300 ms at 32 in flight is out
    assert planner.predictor_capacity(CURVES["predictor"], 400) == 250.0
    assert planner.predictor_capacity(CURVES["predictor"], 10) == 0.0
    # texts twice as long: half the texts/s, twice the latency (the 100 ms point now takes 200 + overhead)
    assert planner.predictor_capacity(CURVES["predictor"], 200, length_factor=2.0) == 50.0


def test_a_request_is_a_hit_only_when_all_its_texts_are():
    assert planner.request_hit_rate(planner.Traffic(1, 2, 0.9)) == pytest.approx(0.81)
    traffic = planner.Traffic(1, 1, 0.95)
    assert planner.transformer_cpu_per_request(CURVES["transformer"], traffic) == pytest.approx(
        0.95 * 0.0001 + 0.05 * 0.001)


def test_the_plan_sizes_each_component_from_its_own_curve():
    result = planner.plan(CURVES, PRICES, planner.Traffic(10_000, 1, 0.95, None, 200))
    # 500 texts/s reach the model; a pod takes 200 * 0.7 = 140 within the SLO: 4 pods
    assert result.predictors == 4
    # 10,000 * (0.95 * 0.1 ms + 0.05 * 1 ms) = 1.45 CPU at 0.7 of one CPU per pod: 3 pods
    assert result.transformers == 3
    # 10,000 MGET + 500 SET per second against 100,000/s each, kept at half: 1 shard
    assert result.redis_shards == 1
    assert result.cpu == 4 * 2 + 3 * 1 + 1
    # 12 CPUs on 3.8 allocatable each: a node holds one 2-CPU pod and one 1-CPU pod, first fit by size
    assert result.nodes["small"] == 4
    assert result.dollars_per_hour["small"] == (pytest.approx(0.8), pytest.approx(0.32))


def test_redis_shards_grow_past_one_shard():
    assert planner.redis_shards(CURVES["redis"], planner.Traffic(100_000, 1, 0.95)) == 3  # 1.05 busy / 0.5


def test_nodes_never_split_a_pod():
    assert planner.nodes_for([(3, 2.0)], 4) == 3  # 3.8 allocatable holds one 2-CPU pod
    assert planner.nodes_for([(1, 8.0)], 4) == 0  # does not fit at all


def test_the_seed_design_costs_more_per_answer_at_the_same_traffic():
    traffic = planner.Traffic(10_000, 1, 0.95, None, 200)
    ours, seed = planner.plan(CURVES, PRICES, traffic), planner.seed_plan(CURVES, PRICES, traffic)
    assert seed.cpu > ours.cpu
    assert planner.cheapest(seed)[1] > planner.cheapest(ours)[1]


def test_the_committed_curves_and_prices_plan():
    curves = json.loads((HERE / "curves.json").read_text())
    prices = json.loads((HERE / "prices.json").read_text())
    assert curves["machine"] and curves["date"] and prices["date"]
    result = planner.plan(curves, prices, planner.Traffic(1000))
    assert result.predictors >= 1 and result.transformers >= 1 and result.nodes


def day(knobs, rate=50.0, spike=10.0):
    return autoscale.simulate(CURVES["predictor"], autoscale.diurnal(rate, spike), knobs, 3.0, 200)


def test_the_simulation_is_deterministic():
    knobs = autoscale.Knobs("kpa", min_pods=0)
    first, second = day(knobs), day(knobs)
    assert first.pods == second.pods and first.p99_ms == second.p99_ms


def test_kpa_scales_to_zero_only_without_traffic():
    idle = autoscale.simulate(CURVES["predictor"], [0.0] * 600, autoscale.Knobs("kpa", min_pods=0), 3.0, 200)
    assert idle.pods[-1] == 0 and idle.cold_starts == 0
    busy = day(autoscale.Knobs("kpa", min_pods=0))
    assert min(busy.pods[3600:]) >= 1  # the diurnal trough never reaches zero traffic


def test_a_floor_of_pods_means_fewer_cold_starts_and_more_pod_hours():
    zero, two = day(autoscale.Knobs("kpa", min_pods=0), rate=2.0), day(autoscale.Knobs("kpa", min_pods=2), rate=2.0)
    assert min(two.pods) == 2
    assert two.pod_hours > zero.pod_hours
    assert two.slo_misses_s <= zero.slo_misses_s


def test_the_spike_is_felt_and_the_autoscalers_react():
    for knobs in (autoscale.Knobs("kpa", min_pods=1), autoscale.Knobs("hpa", min_pods=1, target=0.7)):
        result = day(knobs, rate=150.0)
        spike = 14 * 3600
        assert max(result.pods[spike:spike + 600]) > result.pods[spike - 1]
        assert result.slo_misses_s > 0  # a 10x minute outruns a 3 s cold start at this load


def test_hpa_scales_down_only_after_its_stabilization_window():
    texts = [400.0] * 1200 + [10.0] * 1200
    result = autoscale.simulate(CURVES["predictor"], texts, autoscale.Knobs("hpa", min_pods=1, target=0.7), 3.0, 200)
    high = result.pods[1199]
    assert result.pods[1200 + 200] == high  # inside the 300 s window: no scale-down yet
    assert result.pods[-1] < high


KPA = autoscale.Knobs("kpa", min_pods=0, utilization=1.0)  # the chart's target-utilization-percentage 100


def test_kpa_decider_follows_knative_scale():
    """pkg/autoscaler/scaling/autoscaler.go Scale: scale-down at most to floor(ready / 2) per decision, panic on
    the rounded panic count against the ready pods, and in panic the count never falls."""
    kpa = autoscale.Kpa(KPA)
    assert kpa.decide(0, ready=10, stable=8.0, panic=8.0) == 5  # wants 1, halved at most
    assert kpa.panic_since is None
    assert kpa.decide(2, ready=5, stable=8.0, panic=80.0) == 10  # 10 pods >= 2 x 5 ready: panic
    assert kpa.panic_since == 2
    assert kpa.decide(4, ready=5, stable=8.0, panic=8.0) == 10  # still in panic: no scale-down
    assert kpa.decide(62, ready=10, stable=8.0, panic=8.0) == 10  # a stable window since the last trigger
    assert kpa.decide(64, ready=10, stable=8.0, panic=8.0) == 5  # past it: out of panic, halved
    assert kpa.panic_since is None


def test_kpa_scale_down_delay_keeps_the_highest_recent_decision():
    kpa = autoscale.Kpa(autoscale.Knobs("kpa", utilization=1.0, scale_down_delay_s=10))
    assert kpa.decide(0, ready=4, stable=32.0, panic=32.0) == 4
    assert kpa.decide(2, ready=4, stable=16.0, panic=16.0) == 4  # 2 wanted, 4 decided 2 s ago
    assert kpa.decide(12, ready=4, stable=16.0, panic=16.0) == 2


def test_kpa_steady_load_settles_to_a_constant_count():
    result = autoscale.simulate(CURVES["predictor"], [150.0] * 900, KPA, 3.0, 200)
    # from zero: the queue of the cold start panics it up, then the stable window brings it down and it stays
    assert max(result.pods[:60]) > 1
    assert set(result.pods[300:]) == {1}  # 150 texts/s x 25 ms = 3.75 in flight: one pod at target 8


def test_kpa_spike_panics_up_within_the_panic_window():
    texts = [150.0] * 300 + [1500.0] * 60 + [150.0] * 600
    result = autoscale.simulate(CURVES["predictor"], texts, autoscale.Knobs("kpa", min_pods=1, utilization=1.0), 3.0, 200)
    assert result.pods[299] == 1
    assert max(result.pods[300:300 + KPA.panic_s + KPA.tick_s]) > 1  # asked for within the panic window
    assert min(result.pods[310:360]) > 1  # no scale-down while in panic


def test_kpa_scales_to_zero_after_the_grace_period():
    texts = [150.0] * 300 + [0.0] * 300
    result = autoscale.simulate(CURVES["predictor"], texts, KPA, 3.0, 200)
    first_zero = result.pods.index(0, 300)
    # the 60 s stable window must forget the traffic before the decider asks for 0, then the 30 s grace
    assert first_zero >= 300 + KPA.zero_grace_s
    assert set(result.pods[first_zero:]) == {0}


def test_kpa_on_concurrency_cycles_where_the_pod_latency_is_convex_and_on_rps_it_settles():
    """At 350 texts/s, 24 idle pods hold 3.5 in flight in all (10 ms each) and ask for one pod, which
    then queues: observed concurrency depends on the pod count. Arrivals per second do not."""
    texts = [350.0] * 1200
    on_concurrency = autoscale.simulate(CURVES["predictor"], texts, autoscale.Knobs("kpa", min_pods=1, utilization=1.0),
                                        3.0, 200)
    assert len(set(on_concurrency.pods[600:])) > 2  # still cycling ten stable windows in
    on_rps = autoscale.simulate(CURVES["predictor"], texts,
                                autoscale.Knobs("kpa", min_pods=1, utilization=1.0, metric="rps", target=140.0), 3.0, 200)
    assert set(on_rps.pods[300:]) == {3}  # ceil(350 / 140)
