"""``python -m bench.fairness --baseline DIR``: a lone text's latency while another client storms ``:explain``.

    git worktree add /tmp/main-checkout main
    python -m bench.fairness --baseline /tmp/main-checkout --duration_s 15 --rounds 2

Issue 26 (item 3): one client storms ``:explain`` with many requests at once, each of
four texts of 64 words (260 model rows: the most ``--max_explain_rows`` lets one request
need). Each round, each checkout's predictor (the bundled ``sentiment`` model, its
default backend) is started in turn; ``--storm_clients`` threads post that request back
to back, all as one client (``x-tc-client: storm``, the header the transformer sends),
while another client (``x-tc-client: lone``) sends single short texts one at a time.
Prints one JSON summary: per checkout the lone text's p50/p95 over the rounds, the
storm's requests answered, and the ours/baseline ratio of the p95, measured in one run.
A checkout that ignores ``x-tc-client`` gives each storm request a turn of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
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
    stop, storm_answers, lone_s, failed = threading.Event(), [], [], 0

    def storm() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                storm_answers.append(client.post(server.url + EXPLAIN, json=STORM_BODY, headers=STORM_CLIENT).status_code)

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
                i += 1
        stop.set()
        for thread in threads:
            thread.join(120)
    finally:
        server.stop()
    return {"lone_s": lone_s, "lone_failed": failed, "storm_answers": len(storm_answers)}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout (e.g. a main worktree)")
    parser.add_argument("--duration_s", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--storm_clients", type=int, default=16, help="the storm's requests at once")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="fairness-"))
    runs: dict[str, list[dict]] = {"ours": [], "baseline": []}
    for r in range(args.rounds):
        for name, root in (("ours", ROOT), ("baseline", args.baseline.resolve())):
            runs[name].append(one_round(root, out, f"{name}-{r}", args.duration_s, args.storm_clients))
    summary = {}
    for name, rounds in runs.items():
        lone = [s for one in rounds for s in one["lone_s"]]
        summary[name] = {"lone_texts": len(lone), "lone_p50_ms": round(statistics.median(lone) * 1000, 1),
                         "lone_p95_ms": round(p95(lone) * 1000, 1),
                         "lone_not_200": sum(one["lone_failed"] for one in rounds),
                         "storm_requests_answered": sum(one["storm_answers"] for one in rounds)}
    summary["p95_ours_over_baseline"] = round(summary["ours"]["lone_p95_ms"] / summary["baseline"]["lone_p95_ms"], 3)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
