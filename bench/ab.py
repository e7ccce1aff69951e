"""``python -m bench.ab --baseline DIR``: this checkout against another one (e.g. main), same machine, same run.

    git worktree add /tmp/main-checkout main
    python -m bench.ab --baseline /tmp/main-checkout --duration_s 15 --rounds 3

For a change that must not cost anything (the label metrics of issue 15, say), the
only trustworthy figure on a shared machine is a ratio measured in one run,
alternating: both checkouts' predictor + transformer stacks run side by side (one
Redis, the make-bench model, the same interpreter and dependencies), and every round
runs each case on A then B. Cases, through the transformer: ``uncached`` (16
concurrent single-text clients, every text new) and ``cached`` (the reference mix:
10 clients, 95% from a warmed hot set). Prints one JSON summary: per case and
checkout the median req/s and p99 over the rounds, and ours/baseline ratios.
``--baseline_model_dir`` makes it a model A/B instead (``--baseline .``: the same code
serving two model directories, e.g. two int8 graphs of one model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from bench.run import HOT_SET, MODEL, Run, bench_model, machine, warm
from harness.processes import ROOT, ServerProcess


def stack(run: Run, root: Path, model_dir: Path, name: str) -> tuple[ServerProcess, ServerProcess]:
    predictor = ServerProcess("predictor", [
        "--model_name", MODEL, "--model_dir", str(model_dir), "--model_version", "bench", "--threads",
        str(run.threads)], run.out / f"{name}-predictor.log", root=root).start()
    transformer = ServerProcess("transformer", [
        "--model_name", MODEL, "--predictor_host", f"127.0.0.1:{predictor.http_port}", "--redis_url", run.redis.url],
        run.out / f"{name}-transformer.log", root=root).start()
    return predictor, transformer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout (its code runs as B)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-ab")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--model_dir", type=Path, default=None,
                        help="another model directory (ONNX graphs baked in); default: the make-bench DistilBERT")
    parser.add_argument("--baseline_model_dir", type=Path, default=None,
                        help="the model B serves, when A/B compares two models (e.g. two int8 graphs of one "
                             "model, --baseline .); default: --model_dir")
    parser.add_argument("--duration_s", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    model_dir = args.model_dir or bench_model(args.cache)
    run = Run(args.out, args.duration_s, args.threads)
    checkouts = {"ours": ROOT, "baseline": args.baseline.resolve()}
    model_dirs = {"ours": model_dir, "baseline": args.baseline_model_dir or model_dir}
    servers = {name: stack(run, root, model_dirs[name], name) for name, root in checkouts.items()}
    hot = run.text_file("hot", HOT_SET)
    cases = {"uncached": ("--mode", "closed", "--concurrency", "16"),
             "cached": ("--mode", "closed", "--concurrency", "10", "--hot", str(hot), "--cache_rate", "0.95")}
    results: dict = {case: {name: [] for name in checkouts} for case in cases}
    try:
        for round_ in range(args.rounds):
            for case, extra in cases.items():
                for name, (_, transformer) in servers.items():
                    run.flush()
                    url = f"{transformer.url}/v1/models/{MODEL}:predict"
                    if case == "cached":
                        warm(url, hot)
                    results[case][name].append(run.load(url, f"r{round_}-{case}-{name}", *extra))
    finally:
        for pair in servers.values():
            for server in pair:
                server.stop()
        run.redis.stop()
    summary: dict = {"machine": machine(), "duration_s": args.duration_s, "rounds": args.rounds,
                     "model_dirs": {name: str(path) for name, path in model_dirs.items()}, "load_average_at_end": os.getloadavg()}
    for case, by_name in results.items():
        medians = {name: {"rps": statistics.median(r["rps"] for r in runs),
                          "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                          "errors": sum(r["errors"] for r in runs), "rps_all": [r["rps"] for r in runs]}
                   for name, runs in by_name.items()}
        ours, base = medians["ours"], medians["baseline"]
        summary[case] = {**medians, "rps_ratio": round(ours["rps"] / base["rps"], 3),
                         "p99_ratio": round(ours["p99_ms"] / base["p99_ms"], 3)}
    (args.out / "ab.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
