"""``make soak``: the whole stack for 10 minutes at a steady rate with the reference 95% cache mix.

    python -m load.soak                          # 10 x 1 min at 20 requests/s, the bundled sentiment model
    python -m load.soak --minutes 2 --rate 10    # a quick look

Redis, the predictor and the transformer run as processes (harness/processes.py); the
load is bench/loadgen.py in open mode (Poisson arrivals at ``--rate``, latency timed
from when each request was due), one run per minute, each with its own never-sent
texts so the 5% misses stay misses. 95% of requests pick one of 50 hot texts, warmed
first. Every minute: requests, errors, p50/p99, and the RSS of the predictor and the
transformer (each with its child processes).

Gates (exit 1 when one fails): zero errors; p99 stable, i.e. no minute's p99 above
twice the median minute's p99 plus 20 ms; RSS growth under 10% from the end of the
first minute (warm) to the end of the last, for each service. Results:
``<out>/soak.json`` and ``<out>/soak.md`` (the table in BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.run import sentences, warm
from harness.processes import ROOT, SERVER_ENV, RedisProcess, ServerProcess

HOT_SET = 50
MODEL = "sentiment"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second, one text each")
    parser.add_argument("--cache_rate", type=float, default=0.95)
    parser.add_argument("--model_dir", default=None, help="default: the bundled sentiment model")
    parser.add_argument("--max_rss_growth", type=float, default=0.10)
    parser.add_argument("--out", type=Path, default=None, help="default: .cache/soak/<time>")
    return parser


def start_stack(out: Path, model_dir: str | None) -> tuple[RedisProcess, ServerProcess, ServerProcess]:
    redis = RedisProcess(out / "redis.log").start()
    model = ["--model_dir", model_dir] if model_dir else []
    predictor = ServerProcess("predictor", ["--model_name", MODEL, *model, "--access_log", "false"],
                              out / "predictor.log").start(ready_timeout_s=900)
    transformer = ServerProcess("transformer", ["--model_name", MODEL, "--predictor_host",
                                                f"127.0.0.1:{predictor.http_port}", "--redis_url", redis.url,
                                                "--access_log", "false"], out / "transformer.log").start()
    return redis, predictor, transformer


def one_minute(url: str, out: Path, minute: int, hot: Path, cold: list[str], args) -> dict:
    texts = out / f"texts-minute-{minute}.txt"
    texts.write_text("\n".join(cold))
    command = [sys.executable, "-m", "bench.loadgen", "--url", url, "--texts", str(texts), "--hot", str(hot),
               "--cache_rate", str(args.cache_rate), "--mode", "open", "--rate", str(args.rate),
               "--duration_s", "60", "--timeout_s", "30"]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **SERVER_ENV}, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def gates(minutes: list[dict], max_rss_growth: float) -> list[str]:
    failures = []
    errors = sum(m["errors"] for m in minutes)
    if errors:
        failures.append(f"{errors} errors")
    median_p99 = statistics.median(m["p99_ms"] for m in minutes)
    for m in minutes:
        if m["p99_ms"] > 2 * median_p99 + 20:
            failures.append(f"minute {m['minute']}: p99 {m['p99_ms']} ms, unstable against the median {median_p99} ms")
    for service in ("predictor", "transformer"):
        first, last = minutes[0][f"{service}_rss_mb"], minutes[-1][f"{service}_rss_mb"]
        if last > first * (1 + max_rss_growth):
            failures.append(f"{service} RSS grew {100 * (last / first - 1):.1f}% ({first:.0f} -> {last:.0f} MB)")
    return failures


def markdown(result: dict) -> str:
    lines = [
        f"{result['minutes']} min at {result['rate']} requests/s (open loop, Poisson), {result['cache_rate']:.0%} "
        f"from a warmed hot set of {HOT_SET}, the {MODEL} model; {result['machine']}, {result['date']}.",
        "",
        "| minute | requests | errors | p50 ms | p99 ms | max ms | predictor RSS MB | transformer RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in result["per_minute"]:
        lines.append(f"| {m['minute']} | {m['requests']} | {m['errors']} | {m['p50_ms']} | {m['p99_ms']} | {m['max_ms']} | "
                     f"{m['predictor_rss_mb']:.0f} | {m['transformer_rss_mb']:.0f} |")
    lines += ["", f"Errors: {result['errors']}. RSS growth from minute 1 to minute {result['minutes']}: predictor "
              f"{result['rss_growth']['predictor']:+.1%}, transformer {result['rss_growth']['transformer']:+.1%}. "
              f"Gates: {'passed' if not result['failures'] else '; '.join(result['failures'])}."]
    return "\n".join(lines)


def main() -> None:
    args = build_parser().parse_args()
    out = args.out or ROOT / ".cache" / "soak" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    texts = sentences()
    hot = out / "hot.txt"
    hot.write_text("\n".join(texts[:HOT_SET]))
    cold_per_minute = int(args.rate * 60 * (1 - args.cache_rate) * 3) + 100  # Poisson: ample
    if len(texts) < HOT_SET + cold_per_minute * args.minutes:
        sys.exit(f"soak: {len(texts)} distinct texts are too few for {args.minutes} min at {args.rate}/s")
    redis, predictor, transformer = start_stack(out, args.model_dir)
    url = f"{transformer.url}/v1/models/{MODEL}:predict"
    try:
        warm(url, hot)
        per_minute = []
        for minute in range(1, args.minutes + 1):
            start = HOT_SET + (minute - 1) * cold_per_minute
            summary = one_minute(url, out, minute, hot, texts[start:start + cold_per_minute], args)
            row = {"minute": minute, **summary, "predictor_rss_mb": predictor.rss_mb(),
                   "transformer_rss_mb": transformer.rss_mb()}
            per_minute.append(row)
            print(f"minute {minute}: {row['requests']} requests, {row['errors']} errors, p50 {row['p50_ms']} ms, "
                  f"p99 {row['p99_ms']} ms, RSS predictor {row['predictor_rss_mb']:.0f} MB, transformer "
                  f"{row['transformer_rss_mb']:.0f} MB", flush=True)
    finally:
        for server in (transformer, predictor, redis):
            server.stop()
    result = {
        "minutes": args.minutes, "rate": args.rate, "cache_rate": args.cache_rate,
        "date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "per_minute": per_minute, "errors": sum(m["errors"] for m in per_minute),
        "rss_growth": {s: per_minute[-1][f"{s}_rss_mb"] / per_minute[0][f"{s}_rss_mb"] - 1
                       for s in ("predictor", "transformer")},
        "failures": gates(per_minute, args.max_rss_growth),
    }
    (out / "soak.json").write_text(json.dumps(result, indent=2))
    (out / "soak.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    print(f"results: {out}")
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
