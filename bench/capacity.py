"""``make capacity``: pods, Redis shards, nodes and dollars for a traffic, from the measured curves.

Reads the curves ``make capacity-measure`` wrote (bench/capacity/curves.json, with the
machine and date they came from) and the dated price table (bench/capacity/prices.json),
prints a plan per request rate, ours against the seed design at the same traffic and
SLO, then replays a day of diurnal traffic with a 10x one-minute spike through the
predictor curve under Knative's KPA (scale to zero, min 1, min 2) and an HPA on CPU at
70%, and plots pods and p99 over the day. The arithmetic and its guesses: bench/planner.py
and bench/autoscale.py; how to read it: docs/capacity.md.

    python -m bench.capacity --rps 1000 10000 100000 --cache_rate 0.95 --p99_slo_ms 200 --plot capacity.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import autoscale, planner

HERE = Path(__file__).resolve().parent / "capacity"


def plan_rows(curves: dict, prices: dict, traffic: planner.Traffic) -> list[str]:
    rows = []
    for name, result in (("ours", planner.plan(curves, prices, traffic)),
                         ("seed", planner.seed_plan(curves, prices, traffic))):
        node_type, on_demand = planner.cheapest(result)
        spot_type, spot = planner.cheapest(result, spot=True)
        pods = (f"{result.predictors} predictor + {result.transformers} transformer" if name == "ours"
                else f"{result.predictors} FastAPI pods")
        rows.append(f"| {traffic.rps:,.0f} | {name} | {pods} | {result.redis_shards} | {result.cpu:g} | "
                    f"{result.nodes[node_type]} x {node_type} | ${on_demand:.2f} | "
                    f"${planner.per_million(on_demand, result.answers_per_hour):.4f} | "
                    f"${planner.per_million(spot, result.answers_per_hour):.4f} ({spot_type}) |")
    return rows


def simulate_day(curves: dict, prices: dict, traffic: planner.Traffic) -> dict:
    """Each autoscaler over one day of the predictor's texts/s; pod-hours priced at the cheapest vCPU-hour."""
    model_rate = traffic.rps * traffic.texts_per_request * (1 - traffic.cache_rate)
    texts = autoscale.diurnal(model_rate)
    cold = curves["cold_starts"]["predictor_s"] + curves["cold_starts"]["predictor_pull_s"]
    per_vcpu = min(kind["on_demand"] / kind["vcpus"] for kind in prices["types"].values())
    cpu = curves["predictor"]["cpu"]
    # the chart sets target-utilization-percentage 100 (templates/_helpers.tpl tc.knativeScalingAnnotations):
    # the target is scaleTarget (8) itself, not 70% of it
    setups = {"KPA, scale to zero": autoscale.Knobs("kpa", min_pods=0, utilization=1.0),
              "KPA, min 1": autoscale.Knobs("kpa", min_pods=1, utilization=1.0),
              "KPA, min 2": autoscale.Knobs("kpa", min_pods=2, utilization=1.0),
              # the chart's setting since issue 27 (values.yaml predictor.scaleMetric rps, scaleTargetRps): its
              # target the planner's per-pod texts/s (capacity within the SLO x 70%), without concurrency's
              # dependence on the pod count
              "KPA on rps, min 1": autoscale.Knobs("kpa", min_pods=1, utilization=1.0, metric="rps",
                                                   target=planner.predictor_capacity(curves["predictor"],
                                                                                     traffic.p99_slo_ms) * planner.UTILIZATION),
              "HPA, CPU 70%": autoscale.Knobs("hpa", min_pods=1, target=0.7)}
    return {name: (knobs, autoscale.simulate(curves["predictor"], texts, knobs, cold, traffic.p99_slo_ms), per_vcpu * cpu)
            for name, knobs in setups.items()}


def plot(days: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (pods, p99) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    hours = [t / 3600 for t in range(autoscale.DAY_S)]
    for name, (_, day, _) in days.items():
        pods.plot(hours, day.pods, label=name, linewidth=0.8)
        p99.plot(hours, day.p99_ms, label=name, linewidth=0.6)
    pods.set_ylabel("predictor pods")
    p99.set_ylabel("p99 (ms)")
    p99.set_yscale("symlog")
    p99.set_xlabel("hour of the day")
    pods.legend(fontsize=8)
    pods.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curves", type=Path, default=HERE / "curves.json")
    parser.add_argument("--prices", type=Path, default=HERE / "prices.json")
    parser.add_argument("--rps", type=float, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--texts_per_request", type=float, default=1.0)
    parser.add_argument("--cache_rate", type=float, default=0.95)
    parser.add_argument("--text_chars", type=float, default=None, help="mean characters per text (default: the curve's)")
    parser.add_argument("--p99_slo_ms", type=float, default=200.0)
    parser.add_argument("--simulate_rps", type=float, default=None, help="mean req/s of the simulated day (default: the first --rps)")
    parser.add_argument("--plot", type=Path, default=Path("capacity.png"))
    args = parser.parse_args()
    curves, prices = json.loads(args.curves.read_text()), json.loads(args.prices.read_text())
    print(f"curves: {curves['machine']}, {curves['date']} ({curves['conditions']})")
    print(f"prices: {prices['date']}, {prices['source'][:90]}...")
    print("\n| req/s | design | pods | Redis shards | CPUs | nodes (cheapest on-demand) | $/hour | $/million answers | "
          "$/million on spot |\n|---|---|---|---|---|---|---|---|---|")
    for rps in args.rps:
        traffic = planner.Traffic(rps, args.texts_per_request, args.cache_rate, args.text_chars, args.p99_slo_ms)
        print("\n".join(plan_rows(curves, prices, traffic)))
    rate = args.simulate_rps or args.rps[0]
    traffic = planner.Traffic(rate, args.texts_per_request, args.cache_rate, args.text_chars, args.p99_slo_ms)
    days = simulate_day(curves, prices, traffic)
    print(f"\nA day at a mean of {rate:,.0f} req/s (diurnal +-80%, 10x for one minute at 14:00), predictor only:\n")
    print("| autoscaler | SLO-miss seconds | cold starts | pod-hours | $/day (cheapest vCPU-hour) |\n|---|---|---|---|---|")
    for name, (_, day, pod_hour) in days.items():
        print(f"| {name} | {day.slo_misses_s} | {day.cold_starts} | {day.pod_hours:.1f} | ${day.pod_hours * pod_hour:.2f} |")
    plot(days, args.plot, f"{rate:,.0f} req/s mean, {args.cache_rate:.0%} cached, p99 SLO {args.p99_slo_ms:g} ms; "
                          f"curves {curves['date']}")
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
