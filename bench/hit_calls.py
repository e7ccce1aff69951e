"""Python function calls per cached request through the transformer: this checkout against another git ref.

Throughput on a shared 2-core VM moves by ±5% from round to round, too much to see a few
percent on the cache-hit path. Call counts do not depend on the machine's load: each
transformer runs under ``cProfile`` (uvicorn, KServe's ASGI stack and ours), answers
``--requests`` single-text cache hits over REST from one real Redis and a predictor (the
tiny test model), and exits on SIGTERM, which writes the profile.

    python -m bench.hit_calls --before be447f3 --requests 2000

Prints the calls per request of each side and the functions whose count changed most.
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.processes import ROOT, RedisProcess, ServerProcess, extract, free_port

MODEL = "bench"


def profiled_transformer(root: Path, profile: Path, predictor: ServerProcess, redis_url: str, log: Path):
    port = free_port()
    code = ("import cProfile, runpy, sys; sys.argv = ['transformer'] + sys.argv[1:]; "
            f"cProfile.run('runpy.run_module(\"transformer\", run_name=\"__main__\")', {str(profile)!r})")
    command = [sys.executable, "-c", code, "--model_name", MODEL, "--predictor_host",
               f"127.0.0.1:{predictor.http_port}", "--redis_url", redis_url, "--access_log", "false",
               "--http_port", str(port), "--grpc_port", str(free_port())]
    env = {**os.environ, "PYTHONPATH": str(root), "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    return subprocess.Popen(command, cwd=root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT), port


def count(root: Path, name: str, out: Path, predictor: ServerProcess, redis_url: str, requests: int) -> dict:
    profile = out / f"{name}.prof"
    process, port = profiled_transformer(root, profile, predictor, redis_url, out / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=30) as client:
            for _ in range(600):
                try:
                    if client.get(f"{url}/v2/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None:
                    raise RuntimeError(f"{name}: the transformer exited; see {out / (name + '.log')}")
                time.sleep(0.2)
            body = {"instances": ["a cached text"]}
            client.post(f"{url}/v1/models/{MODEL}:predict", json=body).raise_for_status()  # the miss
            for _ in range(requests):
                answer = client.post(f"{url}/v1/models/{MODEL}:predict", json=body)
                if answer.headers.get("x-cache") != "hit":
                    raise RuntimeError(f"{name}: expected a cache hit, got {answer.status_code} {answer.text[:200]}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    calls: dict = {}
    for (path, _, function), (_, ncalls, *_rest) in pstats.Stats(str(profile)).stats.items():
        function = re.sub(r" at 0x[0-9a-f]+", "", function)  # built-ins are named by address: not comparable
        key = f"{path.split('site-packages/')[-1].replace(str(root) + '/', '')}:{function}"
        calls[key] = calls.get(key, 0) + ncalls
    return {key: value / (requests + 1) for key, value in calls.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hit_calls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision to compare this checkout with")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    from bench.random_model import build_random_model

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        model_dir = build_random_model(out / "tiny")
        old = extract(args.before, out / "before")
        redis = RedisProcess(out / "redis.log").start()
        predictor = ServerProcess("predictor", ["--model_name", MODEL, "--model_dir", str(model_dir), "--backend",
                                                "onnx", "--model_version", MODEL, "--access_log", "false"],
                                  out / "predictor.log").start()
        try:
            before = count(old, "before", out, predictor, redis.url, args.requests)
            after = count(ROOT, "after", out, predictor, redis.url, args.requests)
        finally:
            predictor.stop()
            redis.stop()
    total_before, total_after = sum(before.values()), sum(after.values())
    print(f"calls per cached request: {args.before} {total_before:.1f}, this checkout {total_after:.1f} "
          f"({100 * (total_after / total_before - 1):+.1f}%)")
    changed = sorted(set(before) | set(after), key=lambda k: -abs(after.get(k, 0) - before.get(k, 0)))
    for key in changed[:args.top]:
        print(f"{after.get(key, 0) - before.get(key, 0):+7.1f}  {key}")


if __name__ == "__main__":
    main()
