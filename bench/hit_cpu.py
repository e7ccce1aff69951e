"""The transformer's CPU per request under the seed mix: this checkout against another git ref, in one run.

The seed mix is 10 users in a closed loop, 95% of requests a text from a warm hot set
(cache hits), 5% a new text (misses), one text per request, V1 REST. Each side runs
its own transformer in front of one shared predictor and one Redis (this checkout's),
alternating ``--rounds`` times; what is reported per side is the transformer process's
CPU-seconds (user + system, from /proc via psutil) divided by the requests answered,
and its inverse, requests per transformer core-second. Throughput per core is what the
fleet pays for; on a shared 2-core machine the wall-clock throughput also depends on
everyone else's load, the CPU per request much less (say which, with the figure).

    python -m bench.hit_cpu --before main --duration_s 15 --rounds 2
    python -m bench.hit_cpu --before 87b1dc8 --before_python ../main/.venv/bin/python  # its venv: no hiredis
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import psutil

from bench.run import HOT_SET, MODEL, loadgen, sentences, warm
from harness.processes import ROOT, RedisProcess, ServerProcess, extract


def cpu_s(server: ServerProcess) -> float:
    times = psutil.Process(server.process.pid).cpu_times()
    return times.user + times.system


def one_side(root: Path, name: str, predictor: ServerProcess, redis: RedisProcess, out: Path, texts: list[str],
             duration_s: float, cache_rate: float, extra: list[str], python: str = sys.executable) -> dict:
    args = ["--model_name", MODEL, "--predictor_host", f"127.0.0.1:{predictor.http_port}", "--redis_url", redis.url,
            "--access_log", "false", "--cache_timeout_ms", "1000", *extra]  # a busy machine: no hit turned miss
    server = ServerProcess("transformer", args, out / f"{name}.log", root=root, python=python).start()
    try:
        url = f"{server.url}/v1/models/{MODEL}:predict"
        hot, cold = out / "hot.txt", out / f"cold-{name}.txt"
        hot.write_text("\n".join(texts[:HOT_SET]))
        cold.write_text("\n".join(texts[HOT_SET:]))
        warm(url, hot)
        before = cpu_s(server)
        result = loadgen(url, name, cold, duration_s, "--mode", "closed", "--concurrency", "10", "--hot", str(hot),
                         "--cache_rate", str(cache_rate))
        spent = cpu_s(server) - before
    finally:
        server.stop()
    answered = result["requests"] - result["errors"]
    return {"requests": answered, "errors": result["errors"], "rps": result["rps"], "p99_ms": result["p99_ms"],
            "cpu_s": round(spent, 3), "cpu_us_per_request": round(1e6 * spent / answered, 1),
            "requests_per_core_s": round(answered / spent, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hit_cpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision to compare this checkout with")
    parser.add_argument("--duration_s", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache_rate", type=float, default=0.95)
    parser.add_argument("--before_python", default=sys.executable,
                        help="the interpreter (virtual environment) the --before side runs in: its own "
                             "dependencies, when this checkout pins others (e.g. main's .venv/bin/python)")
    args = parser.parse_args()
    from harness.random_model import build_random_model

    texts = sentences()
    rounds: dict = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        old = extract(args.before, out / "before")
        redis = RedisProcess(out / "redis.log").start()
        # the tiny model: the predictor's own cost is not what is measured, and it keeps the 5% misses cheap
        model_dir = build_random_model(out / "tiny")
        predictor = ServerProcess("predictor", ["--model_name", MODEL, "--model_dir", str(model_dir), "--backend",
                                                "onnx", "--model_version", MODEL, "--access_log", "false"],
                                  out / "predictor.log").start()
        try:
            for index in range(args.rounds):
                for root, name, python in ((old, "before", args.before_python), (ROOT, "after", sys.executable)):
                    chunk = texts[(index * 2 + (name == "after")) * 3000:][:3000]
                    rounds[name].append(one_side(root, f"{name}-{index}", predictor, redis, out, chunk,
                                                 args.duration_s, args.cache_rate, [], python))
        finally:
            predictor.stop()
            redis.stop()
    summary = {}
    for name, runs in rounds.items():
        requests, spent = sum(r["requests"] for r in runs), sum(r["cpu_s"] for r in runs)
        summary[name] = {"cpu_us_per_request": round(1e6 * spent / requests, 1),
                         "requests_per_core_s": round(requests / spent, 1),
                         "rps": [r["rps"] for r in runs], "p99_ms": [r["p99_ms"] for r in runs],
                         "errors": sum(r["errors"] for r in runs)}
    summary["per_core_ratio"] = round(summary["after"]["requests_per_core_s"] / summary["before"]["requests_per_core_s"],
                                      2)
    print(json.dumps({"before": args.before, **summary}, indent=1))


if __name__ == "__main__":
    main()
