"""``python -m bench.fairness --baseline DIR``: a lone text's latency while another client storms ``:explain``.

    git worktree add /tmp/main-checkout main
    python -m bench.fairness --baseline /tmp/main-checkout --duration_s 15 --rounds 2

Issue 26 (item 3): one client storms ``:explain`` with many requests at once, each of
four texts of 64 words (260 model rows: the most ``--max_explain_rows`` lets one request
need). Each round, each checkout's predictor (the bundled ``sentiment`` model, its
default backend) is started in turn; ``--storm_clients`` threads post that request back
to back, all as one client (``x-tc-client: storm``, the header the transformer sends),
while another client (``x-tc-client: lone``) sends single short texts one at a time.
Prints one JSON summary per storm size (``--storm_clients 16 32 64`` runs each in turn):
per checkout the lone text's p50/p95 over the rounds, and the p95 of where its time went
in the predictor (``x-queue-time``, ``x-inference-time``), the storm's answers by status
(a 429 counted apart, with how many carried ``Retry-After``), and the ours/baseline ratio
of the p95, measured in one run. A checkout that ignores ``x-tc-client`` gives each storm
request a turn of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from harness.processes import ROOT, ServerProcess

EXPLAIN = "/v1/models/sentiment:explain"
PREDICT = "/v1/models/sentiment:predict"
STORM_BODY = {"instances": [" ".join(f"word{t}x{w}" for w in range(64)) for t in range(4)]}
STORM_CLIENT = {"x-tc-client": "storm"}  # contract/schema.py CLIENT_HEADER: one client, many requests
LONE_CLIENT = {"x-tc-client": "lone"}


def one_round(root: Path, out: Path, name: str, duration_s: float, storm_clients: int) -> dict:
    server = ServerProcess("predictor", ["--model_name", "sentiment"], out / f"{name}.log", root=root).start()
    stop, storm_answers, lone_s, failed, queue_s, inference_s = threading.Event(), [], [], 0, [], []
    retry_after = 0

    def storm() -> None:
        nonlocal retry_after
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                response = client.post(server.url + EXPLAIN, json=STORM_BODY, headers=STORM_CLIENT)
                storm_answers.append(response.status_code)
                retry_after += response.status_code == 429 and "retry-after" in response.headers

    try:
        threads = [threading.Thread(target=storm, daemon=True) for _ in range(storm_clients)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the storm is queued before the lone client starts
        with httpx.Client(timeout=60) as client:
            deadline, i = time.monotonic() + duration_s, 0
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = client.post(server.url + PREDICT, json={"instances": [f"a lone text, number {i}"]},
                                       headers=LONE_CLIENT)
                lone_s.append(time.perf_counter() - started)  # a 504 counts with the time it took
                failed += response.status_code != 200
                if response.status_code == 200:  # where its time went in the predictor (contract/timings.py)
                    queue_s.append(float(response.headers.get("x-queue-time", "nan")) / 1000)
                    inference_s.append(float(response.headers.get("x-inference-time", "nan")) / 1000)
                i += 1
        stop.set()
        for thread in threads:
            thread.join(120)
    finally:
        server.stop()
    return {"lone_s": lone_s, "lone_failed": failed, "storm_answers": storm_answers, "queue_s": queue_s,
            "inference_s": inference_s, "storm_retry_after": retry_after}


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def summarize(runs: dict[str, list[dict]]) -> dict:
    summary = {}
    for name, rounds in runs.items():
        lone = [s for one in rounds for s in one["lone_s"]]
        statuses = Counter(status for one in rounds for status in one["storm_answers"])
        summary[name] = {"lone_texts": len(lone), "lone_p50_ms": round(statistics.median(lone) * 1000, 1),
                         "lone_p95_ms": round(p95(lone) * 1000, 1),
                         "lone_queue_p95_ms": round(p95([s for one in rounds for s in one["queue_s"]]) * 1000, 1),
                         "lone_inference_p95_ms": round(
                             p95([s for one in rounds for s in one["inference_s"]]) * 1000, 1),
                         "lone_not_200": sum(one["lone_failed"] for one in rounds),
                         "storm_requests_answered": sum(statuses.values()),
                         "storm_by_status": dict(sorted(statuses.items())),
                         "storm_429_with_retry_after": sum(one["storm_retry_after"] for one in rounds)}
    summary["p95_ours_over_baseline"] = round(summary["ours"]["lone_p95_ms"] / summary["baseline"]["lone_p95_ms"], 3)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout (e.g. a main worktree)")
    parser.add_argument("--duration_s", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--storm_clients", type=int, nargs="+", default=[16],
                        help="the storm's requests at once; several sizes run one after the other")
    parser.add_argument("--ours_only", action="store_true", help="skip the baseline (a quick probe, no ratio)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="fairness-"))
    checkouts = [("ours", ROOT)] + ([] if args.ours_only else [("baseline", args.baseline.resolve())])
    summaries = {}
    for clients in args.storm_clients:
        runs: dict[str, list[dict]] = {name: [] for name, _ in checkouts}
        for r in range(args.rounds):
            for name, root in checkouts:
                runs[name].append(one_round(root, out, f"{name}-{clients}-{r}", args.duration_s, clients))
        if args.ours_only:
            runs["baseline"] = runs["ours"]
        summaries[f"storm_clients_{clients}"] = summarize(runs)
        print(json.dumps({f"storm_clients_{clients}": summaries[f"storm_clients_{clients}"]}), flush=True)
    print(json.dumps(summaries, indent=2))


if __name__ == "__main__":
    main()
