"""``make capacity-measure``: the per-pod curves the capacity planner reads, measured on this machine.

Each server is pinned (``taskset``) to as many cores as the chart gives its pod
(predictor 2 CPUs, transformer 1, Redis 1: it is single-threaded), then:

- **predictor** (the bundled sentiment model, ``onnx-int8``, one text per request, SST-2
  sentences): texts/s, p50 and p99 against requests in flight (closed loop);
- **transformer**: its CPU-seconds per request (psutil) for a cache hit and for a miss,
  with the fast path on;
- **Redis**: commands per request (``INFO commandstats`` around the transformer runs)
  and one shard's capacity for our commands (``redis-benchmark``: ``MGET`` of one key,
  pipelined ``SET ... EX``, keys and values shaped like ours);
- **cold starts**: copied from BENCHMARKS.md's ``make bench-images`` figures (a pod start
  needs container images, which this command does not build).

Writes JSON with the machine, the date and the load average around the run (a shared
machine makes every rate here a lower bound).

    python -m bench.capacity_measure --out bench/capacity/curves.json --duration_s 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import redis as redis_client

from bench.hit_cpu import cpu_s
from bench.run import HOT_SET, loadgen, sentences, warm
from harness.processes import RedisProcess, ServerProcess

LEVELS = (1, 2, 4, 8, 16, 32)
MODEL = "sentiment"  # the bundled model the chart serves by default
# BENCHMARKS.md, "Scale from zero: the images" (2026-12-02, quiet): container start to ready, median of 3,
# plus the image pull at 100 MB/s on a node that lacks it; first answer after idle, split layout.
COLD_STARTS = {"predictor_s": 1.56, "transformer_s": 1.74, "predictor_pull_s": 1.5, "transformer_pull_s": 1.0,
               "first_answer_split_s": 3.04, "first_answer_collocated_s": 1.96,
               "source": "BENCHMARKS.md, Scale from zero: the images (make bench-images, 2026-12-02)"}
# The seed design (bench/baseline.py: FastAPI + HF pipeline + whole-body cache), from BENCHMARKS.md's make bench
# of 2026-12-02 (quiet, 2 cores): uncached 28.6 req/s; p99 235.9 ms at 14.3 req/s; the 95% mix 256 req/s.
SEED = {"uncached_rps_per_pod": 28.6, "pod_cpu": 2, "mix_rps_per_pod": 256.0, "mix_cache_rate": 0.95,
        "source": "BENCHMARKS.md, Results 2026-12-02 03:10 UTC (make bench, quiet)"}


class Pinned(ServerProcess):
    """A server started under ``taskset -c cores``: every thread it makes stays on the pod's cores."""

    def __init__(self, cores: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cores = cores

    @property
    def command(self) -> list[str]:
        return ["taskset", "-c", self.cores, *super().command]


def commandstats(url: str) -> dict[str, int]:
    stats = redis_client.Redis.from_url(url).info("commandstats")
    return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}


def predictor_curve(out: Path, texts: list[str], duration_s: float, cores: str) -> dict:
    server = Pinned(cores, "predictor", ["--model_name", MODEL, "--access_log", "false", "--threads", "2"],
                    out / "predictor.log").start()
    curve: dict = {"in_flight": [], "texts_per_s": [], "p50_ms": [], "p99_ms": []}
    try:
        url = f"{server.url}/v1/models/{MODEL}:predict"
        for index, level in enumerate(LEVELS):
            cold = out / f"sweep-{level}.txt"
            cold.write_text("\n".join(texts[index * 4000:][:4000]))
            result = loadgen(url, f"predictor-{level}", cold, duration_s, "--mode", "closed", "--concurrency",
                             str(level))
            for key, value in (("in_flight", level), ("texts_per_s", result["rps"]), ("p50_ms", result["p50_ms"]),
                               ("p99_ms", result["p99_ms"])):
                curve[key].append(value)
    finally:
        server.stop()
    return {**curve, "cpu": len(cores.split(",")), "mean_chars": round(sum(map(len, texts)) / len(texts), 1)}


def transformer_costs(out: Path, texts: list[str], predictor: ServerProcess, redis: RedisProcess,
                      duration_s: float, core: str) -> dict:
    args = ["--model_name", MODEL, "--predictor_host", f"127.0.0.1:{predictor.http_port}", "--redis_url", redis.url,
            "--access_log", "false", "--cache_timeout_ms", "1000"]  # a loaded machine must not trip the 20 ms deadline
    server = Pinned(core, "transformer", args, out / "transformer.log").start()
    costs = {}
    try:
        url = f"{server.url}/v1/models/{MODEL}:predict"
        hot = out / "hot.txt"
        hot.write_text("\n".join(texts[:HOT_SET]))
        warm(url, hot)
        for name, rate, offset in (("hit", 1.0, 30_000), ("miss", 0.0, 34_000)):
            cold = out / f"transformer-{name}.txt"
            cold.write_text("\n".join(texts[offset:][:4000]))
            calls, spent = commandstats(redis.url), cpu_s(server)
            result = loadgen(url, f"transformer-{name}", cold, duration_s, "--mode", "closed", "--concurrency", "10",
                             "--hot", str(hot), "--cache_rate", str(rate))
            spent, after = cpu_s(server) - spent, commandstats(redis.url)
            answered = result["requests"] - result["errors"]
            costs[name] = {"cpu_s_per_request": round(spent / answered, 6), "rps": result["rps"],
                           "p99_ms": result["p99_ms"],
                           "redis_commands_per_request": {k: round((after[k] - calls.get(k, 0)) / answered, 3)
                                                          for k in after if k in ("mget", "set")}}
    finally:
        server.stop()
    return {**costs, "cpu": 1}


def redis_capacity(redis: RedisProcess, requests: int) -> dict:
    """Commands per second one Redis answers for our two commands (10 clients, keys and values like ours)."""
    key = "tc:sentiment:0123456789ab:p1:__rand_int__"
    rates = {}
    for name, command in (("mget", ["MGET", key]), ("set", ["SET", key, "x" * 8, "EX", "86400"])):
        done = subprocess.run(["redis-benchmark", "-p", str(redis.port), "-n", str(requests), "-c", "10",
                               "-r", "100000", "--csv", *command], capture_output=True, text=True, check=True)
        rows = [line for line in done.stdout.splitlines() if line.startswith('"')]
        rates[name + "_per_s"] = float(re.findall(r'"([\d.]+)"', rows[-1])[0])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity_measure", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--duration_s", type=float, default=5.0, help="per point of each curve")
    parser.add_argument("--redis_requests", type=int, default=100_000)
    args = parser.parse_args()
    texts = sentences()
    load_before = os.getloadavg()
    cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:2])
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        redis = RedisProcess(out / "redis.log").start()
        psutil.Process(redis.process.pid).cpu_affinity([0])  # single-threaded: its one thread is pinned
        try:
            predictor_curve_ = predictor_curve(out, texts, args.duration_s, cores)
            predictor = ServerProcess("predictor", ["--model_name", MODEL, "--access_log", "false"],
                                      out / "predictor-2.log").start()
            try:
                transformer = transformer_costs(out, texts, predictor, redis, args.duration_s, cores.split(",")[-1])
            finally:
                predictor.stop()
            shard = redis_capacity(redis, args.redis_requests)
        finally:
            redis.stop()
    curves = {
        "machine": f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
                   f"{_cpu_model()}, {round(psutil.virtual_memory().total / 2**30)} GiB",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "conditions": f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; "
                      f"{args.duration_s:g} s per point; shared machine: rates are lower bounds",
        "predictor": predictor_curve_, "transformer": transformer, "redis": shard,
        "cold_starts": COLD_STARTS, "seed": SEED,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(curves, indent=1) + "\n")
    print(json.dumps(curves, indent=1))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
