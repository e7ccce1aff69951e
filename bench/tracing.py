"""What tracing and Redis Cluster cost, and that the hot path without them costs what it did: one run, same machine.

    python -m bench.tracing                      # before = the code at `git merge-base HEAD main`
    python -m bench.tracing --before f2373c5 --duration_s 10 --rounds 3

Stacks, each a predictor (the tiny test model, so that the servers' own overhead, not
the model, is what is measured: the worst case for any per-request cost) behind a
transformer, on one Redis:

* ``before``: the code of ``--before`` (extracted with ``git archive``), run from its own directory;
* ``off``: this checkout, no OTLP endpoint set (tracing off);
* ``on``: this checkout, ``OTEL_EXPORTER_OTLP_ENDPOINT`` set to a receiver in this process, every trace
  sampled (``OTEL_TRACES_SAMPLER=always_on``), spans exported every 200 ms;
* ``cluster``: this checkout, tracing off, the cache on a three-master Redis Cluster.

Two loads through the transformer: ``hit`` (every request a cached text: the hot path
that dominates production) and ``miss`` (every text new: cache lookup, predictor
call, batching, inference, write). The stacks take turns (every other round in reverse
order), ``--rounds`` times over,
so that a change in the machine's load hits all of them alike; each figure is the
median over rounds, and the ratios are against ``before`` (``cluster`` against ``off``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from harness.otlp import OtlpReceiver
from harness.processes import ROOT, SERVER_ENV, RedisProcess, ServerProcess, extract
from harness.redis_cluster import RedisClusterProcess

MODEL = "bench"
LOADS = {"hit": ["--cache_rate", "1.0"], "miss": []}


def stack(name: str, root: Path, redis_url: str, model_dir: Path, out: Path, env: dict) -> list[ServerProcess]:
    predictor = ServerProcess("predictor", ["--model_name", MODEL, "--model_dir", str(model_dir), "--backend", "onnx",
                                            "--model_version", "bench", "--access_log", "false"],
                              out / f"{name}-predictor.log", root=root, env=env).start()
    transformer = ServerProcess("transformer", ["--model_name", MODEL,
                                                "--predictor_host", f"127.0.0.1:{predictor.http_port}",
                                                "--redis_url", redis_url, "--cache_timeout_ms", "100",
                                                "--access_log", "false"],
                                out / f"{name}-transformer.log", root=root, env=env).start()
    return [predictor, transformer]


def load(url: str, texts: Path, hot: Path, extra: list[str], duration_s: float, concurrency: int) -> dict:
    command = [sys.executable, "-m", "bench.loadgen", "--url", f"{url}/v1/models/{MODEL}:predict", "--texts",
               str(texts), "--hot", str(hot), "--duration_s", str(duration_s), "--concurrency", str(concurrency),
               *extra]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **SERVER_ENV}, capture_output=True, text=True,
                          check=True, timeout=duration_s * 4 + 120)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=None, help="git revision of the 'before' code (default: merge-base with main)")
    parser.add_argument("--duration_s", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--stacks", default="before,off,on,cluster", help="which stacks (see above), comma-separated")
    parser.add_argument("--loads", default="hit,miss", help="which loads, comma-separated")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "features")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    before = args.before or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT, check=True,
                                           capture_output=True, text=True).stdout.strip()
    from harness.random_model import build_random_model

    with tempfile.TemporaryDirectory() as scratch, OtlpReceiver(keep_spans=False) as receiver:
        scratch = Path(scratch)
        model_dir = build_random_model(scratch / "tiny")
        old = extract(before, scratch / "before")
        redis = RedisProcess(args.out / "redis.log").start()
        cluster = RedisClusterProcess(scratch / "cluster").start()
        traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_SAMPLER": "always_on",
                  "OTEL_BSP_SCHEDULE_DELAY": "200"}
        plain = {name: "" for name in traced}
        plans = {"before": (old, redis.url, plain), "off": (ROOT, redis.url, plain), "on": (ROOT, redis.url, traced),
                 "cluster": (ROOT, cluster.url, plain)}
        stacks = {name: stack(name, *plans[name][:2], model_dir, args.out, plans[name][2])
                  for name in args.stacks.split(",")}
        loads = {kind: LOADS[kind] for kind in args.loads.split(",")}
        count = int(args.duration_s * 3000)
        figures: dict = {name: {kind: [] for kind in loads} for name in stacks}
        hot = args.out / "hot.txt"
        hot.write_text("\n".join(f"hot text {i} of the benchmark" for i in range(50)))
        try:
            for servers in stacks.values():  # the hot set into each stack's cache (Redis or cluster)
                for _ in range(2):
                    httpx.post(f"{servers[1].url}/v1/models/{MODEL}:predict",
                               json={"instances": hot.read_text().splitlines()}, timeout=60).raise_for_status()
            for round_ in range(args.rounds):
                for kind, extra in loads.items():
                    order = list(stacks.items())  # every other round in reverse: no stack always goes first
                    for name, servers in order[::-1] if round_ % 2 else order:
                        texts = args.out / "cold.txt"
                        texts.write_text("\n".join(f"{uuid.uuid4().hex} is a new text" for _ in range(count)))
                        spent = [cpu_seconds(server) for server in servers]
                        result = load(servers[1].url, texts, hot, extra, args.duration_s, args.concurrency)
                        for part, server, before_s in zip(("predictor", "transformer"), servers, spent):
                            result[f"{part}_cpu_ms"] = round((cpu_seconds(server) - before_s) * 1000
                                                             / max(result["requests"], 1), 3)
                        figures[name][kind].append(result)
                        print(f"round {round_} {kind} {name}: {result['rps']} rps p50 {result['p50_ms']} "
                              f"p99 {result['p99_ms']} errors {result['errors']} CPU ms/request: transformer "
                              f"{result['transformer_cpu_ms']} predictor {result['predictor_cpu_ms']}", flush=True)
        finally:
            for servers in stacks.values():
                for server in reversed(servers):
                    server.stop()
            redis.stop()
            cluster.stop()
        summary = summarize(figures, list(loads))
        summary.update(before=before, exports_received=receiver.exports, load=os.getloadavg(),
                       tracing_hooks_off_ns_per_request=round(hooks_off_ns()))
        (args.out / "results.json").write_text(json.dumps({"summary": summary, "runs": figures}, indent=2))
        print(json.dumps(summary, indent=2))


def cpu_seconds(server: ServerProcess) -> float:
    """CPU time (user + system) the server's processes have used so far."""
    import psutil

    root = psutil.Process(server.process.pid)
    return sum(sum(p.cpu_times()[:2]) for p in (root, *root.children(recursive=True)))


METRICS = ("rps", "p50_ms", "p99_ms", "transformer_cpu_ms", "predictor_cpu_ms")


def hooks_off_ns(repeats: int = 200_000) -> float:
    """Nanoseconds of CPU that every tracing hook of one cache-miss request costs when tracing is off (in this process,
    where no endpoint is set): the transformer's parse, cache lookup, predictor call, cache write spans, its
    attributes call and traceparent injection; the predictor's parse span and the context its batcher keeps."""
    from runtime import tracing

    assert not tracing.ENABLED, "run without OTEL_EXPORTER_OTLP_ENDPOINT"

    def one_request() -> None:
        for name in ("parse", "cache lookup", "predictor call", "cache write", "parse"):
            with tracing.span(name, {"texts": 1}) as current:
                tracing.set_attributes(current, {"cache.hits": 0})
        tracing.inject({"x-request-id": "id"})
        tracing.current_context()

    started = time.process_time_ns()
    for _ in range(repeats):
        one_request()
    return (time.process_time_ns() - started) / repeats


def summarize(figures: dict, loads: list[str]) -> dict:
    """Medians over rounds; ratios of throughput and of the servers' CPU per request against the reference."""
    medians = {name: {kind: {metric: statistics.median(run[metric] for run in runs) for metric in METRICS}
                      | {"errors": sum(r["errors"] for r in runs)}
                      for kind, runs in kinds.items()} for name, kinds in figures.items()}
    ratios = {}
    for name, reference in (("off", "before"), ("on", "before"), ("cluster", "off")):
        if name not in medians or reference not in medians:
            continue
        ratios[f"{name}/{reference}"] = {
            kind: {"rps": round(medians[name][kind]["rps"] / medians[reference][kind]["rps"], 3),
                   "cpu_per_request": round(_cpu(medians[name][kind]) / _cpu(medians[reference][kind]), 3)}
            for kind in loads}
    return {"medians": medians, "ratios": ratios}


def _cpu(figures: dict) -> float:
    return figures["transformer_cpu_ms"] + figures["predictor_cpu_ms"]


if __name__ == "__main__":
    main()
