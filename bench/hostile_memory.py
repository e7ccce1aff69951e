"""``python -m bench.hostile_memory --baseline DIR``: what the 8 MB long-text flood costs a predictor's memory.

    git worktree add /tmp/main-checkout main
    python -m bench.hostile_memory --baseline /tmp/main-checkout

Issue 26 (item 1): 80 texts of 99,990 one-token characters (8 MB, under every limit) once
tokenized in full came to ~1.3 GB of token lists. For each checkout in turn (this one,
then the baseline) a predictor serving the bundled ``sentiment`` model (its default
backend) is started, and the flood is posted once per truncation (``chunks``,
``head_tail``, ``head``), one after the other. Prints one JSON summary: per checkout and
truncation the status, seconds, the RSS growth over the request and the peak RSS growth
during it (sampled every 100 ms, the process and its children), and ours/baseline of the
peak growth, measured in one run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx

from harness.processes import ROOT, ServerProcess

PREDICT = "/v1/models/sentiment:predict"
FLOOD = ["!" * 99_990] * 80  # "!" is one token: the most tokens a text under --max_chars can be
TRUNCATIONS = ("chunks", "head_tail", "head")


def one_checkout(root: Path, out: Path, name: str) -> dict:
    server = ServerProcess("predictor", ["--model_name", "sentiment"], out / f"{name}.log", root=root,
                           sample_rss=True).start()
    results = {}
    try:
        with httpx.Client(timeout=120) as client:
            for truncation in TRUNCATIONS:
                time.sleep(1.0)  # let the previous request's memory settle
                before = server.rss_mb()
                server.peak_rss_mb = before
                started = time.perf_counter()
                response = client.post(server.url + PREDICT,
                                       json={"instances": FLOOD, "parameters": {"truncation": truncation}})
                seconds = time.perf_counter() - started
                time.sleep(0.2)  # one more sample of the peak
                results[truncation] = {
                    "status": response.status_code, "seconds": round(seconds, 2),
                    "rss_growth_mb": round(server.rss_mb() - before, 1),
                    "peak_growth_mb": round(server.peak_rss_mb - before, 1),
                }
    finally:
        server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout (e.g. a main worktree)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="hostile-memory-"))
    summary = {name: one_checkout(root, out, name)
               for name, root in (("ours", ROOT), ("baseline", args.baseline.resolve()))}
    summary["peak_growth_ours_over_baseline"] = {
        t: round(summary["ours"][t]["peak_growth_mb"] / summary["baseline"][t]["peak_growth_mb"], 3)
        if summary["baseline"][t]["peak_growth_mb"] > 0 else None for t in TRUNCATIONS}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
