"""What one request costs a server, counted, not timed: this checkout against another git ref.

Throughput on a shared 2-core VM moves by ±20% from round to round, too much to see a few
percent. Counts do not depend on the machine's load. One server (``--process``: the
transformer, or the predictor alone) answers ``--requests`` single-text requests over
REST after a warm-up, each side in turn, with the same texts: ``--load hit`` repeats one
cached text through the transformer (its hot path: Redis answers), ``--load miss`` sends
a new text every time (the transformer's lookup, predictor call and write; or, for the
predictor, batching and inference, on one intra-op thread). Real Redis, a real predictor
(the tiny test model, fp32 ONNX, so that the servers' own work is what is counted).
Two counters:

* ``calls`` (default): Python function calls, ``cProfile`` around the server's module
  (uvicorn, KServe's ASGI stack and ours); the functions whose count changed most are
  listed. The profile is written when SIGTERM stops the server, so start-up and warm-up
  are in it too: the figure is per request of the whole run.
* ``instructions``: CPU instructions the server process executed during the measured
  requests only (``valgrind --tool=callgrind``, instrumentation switched on by
  ``callgrind_control`` after the warm-up and off before the stop): what the CPU does, C
  code (the event loop, JSON, hiredis, sockets, ONNX Runtime) included. Under valgrind a
  request takes ~30 ms; ``PYTHONHASHSEED`` is fixed so both sides hash alike; repeated
  runs agree within about ±0.5%.

    python -m bench.hit_calls --before be447f3
    python -m bench.hit_calls --before be447f3 --counter instructions --requests 300
    python -m bench.hit_calls --before be447f3 --counter instructions --load miss --process predictor
    python -m bench.hit_calls --before 87b1dc8 --before_python ../main/.venv/bin/python --counter instructions
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from harness.processes import ROOT, SERVER_ENV, RedisProcess, ServerProcess, extract, free_port

MODEL = "bench"
WARM_UP = 50  # requests before counting starts (instructions): connection pools, first-call caches
PREDICTOR_ARGS = ["--model_name", MODEL, "--backend", "onnx", "--model_version", MODEL, "--access_log", "false"]


def server_args(process: str, model_dir: Path, predictor: ServerProcess | None, redis_url: str, port: int) -> list[str]:
    ports = ["--http_port", str(port), "--grpc_port", str(free_port())]
    if process == "predictor":  # one intra-op thread: no pool threads whose waits valgrind would serialize
        return [*PREDICTOR_ARGS, "--model_dir", str(model_dir), "--threads", "1", *ports]
    # a Redis deadline far above valgrind's slowdown (~50x): at the 20 ms default a loaded machine turns hits to misses
    return ["--model_name", MODEL, "--predictor_host", f"127.0.0.1:{predictor.http_port}", "--redis_url", redis_url,
            "--access_log", "false", "--cache_timeout_ms", "2000", *ports]


def start(root: Path, module: str, counter: str, output: Path, args: list[str], log: Path,
          python: str = sys.executable) -> subprocess.Popen:
    if counter == "calls":
        code = (f"import cProfile, runpy, sys; sys.argv = [{module!r}] + sys.argv[1:]; "
                f"cProfile.run('runpy.run_module(\"{module}\", run_name=\"__main__\")', {str(output)!r})")
        command = [python, "-c", code, *args]
    else:
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={output}",
                   python, "-m", module, *args]
    # CACHE_HEADERS by env, not flag: send() checks x-cache (off by default since issue 26), and a ref from
    # before the switch ignores an env var it does not know where it would refuse the flag
    env = {**os.environ, **SERVER_ENV, "PYTHONPATH": str(root), "OTEL_EXPORTER_OTLP_ENDPOINT": "",
           "PYTHONHASHSEED": "0", "CACHE_HEADERS": "true"}
    return subprocess.Popen(command, cwd=root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def instrumentation(process: subprocess.Popen, state: str) -> None:
    subprocess.run(["callgrind_control", "--instr=" + state, str(process.pid)], check=True, capture_output=True)


def send(client: httpx.Client, url: str, name: str, texts: list[str], expected_cache: str | None) -> None:
    for text in texts:
        answer = client.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": [text]})
        if answer.status_code != 200 or (expected_cache and answer.headers.get("x-cache") != expected_cache):
            raise RuntimeError(f"{name}: expected a cache {expected_cache}, got {answer.status_code} "
                               f"{answer.headers.get('x-cache')} {answer.text[:200]}")


def workload(load: str, requests: int) -> tuple[list[str], list[str]]:
    """(warm-up texts, measured texts): one cached text, or a new one each time; the same for both sides
    (Redis is emptied before each side, so each side's texts are new to it)."""
    if load == "hit":
        return ["a cached text"] * (WARM_UP + 1), ["a cached text"] * requests
    return [f"a warm-up text, number {i}" for i in range(WARM_UP)], [f"a new text, number {i}" for i in range(requests)]


def measure(root: Path, name: str, args, out: Path, model_dir: Path, predictor: ServerProcess | None,
            redis_url: str, python: str = sys.executable) -> Path:
    """Run one server through the workload; the counter's output file."""
    output, log, port = out / f"{name}.{args.counter}", out / f"{name}.log", free_port()
    process = start(root, args.process, args.counter, output,
                    server_args(args.process, model_dir, predictor, redis_url, port), log, python)
    url = f"http://127.0.0.1:{port}"
    warm_up, measured = workload(args.load, args.requests)
    redis.Redis.from_url(redis_url).flushall()
    expected = None if args.process == "predictor" else args.load
    try:
        with httpx.Client(timeout=120) as client:
            for _ in range(3000):
                try:
                    if client.get(f"{url}/v2/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None:
                    raise RuntimeError(f"{name}: the {args.process} exited; see {log}")
                time.sleep(0.2)
            send(client, url, name, warm_up, None)
            if args.counter == "instructions":
                instrumentation(process, "on")
            send(client, url, name, measured, expected)
            if args.counter == "instructions":
                instrumentation(process, "off")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(120)
    return output


def calls_per_request(profile: Path, root: Path, requests: int) -> dict:
    """Calls per request by function, ``requests`` being every request the run answered (warm-up included)."""
    calls: dict = {}
    for (path, _, function), (_, ncalls, *_rest) in pstats.Stats(str(profile)).stats.items():
        function = re.sub(r" at 0x[0-9a-f]+", "", function)  # built-ins are named by address: not comparable
        key = f"{path.split('site-packages/')[-1].replace(str(root) + '/', '')}:{function}"
        calls[key] = calls.get(key, 0) + ncalls
    return {key: value / requests for key, value in calls.items()}


def instructions_per_request(output: Path, requests: int) -> float:
    totals = re.search(r"^totals: (\d+)", output.read_text(), re.M)  # the run's total; "summary:" is per dump
    if totals is None:
        raise RuntimeError(f"no totals line in {output}")
    return int(totals.group(1)) / requests


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hit_calls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision to compare this checkout with")
    parser.add_argument("--counter", choices=["calls", "instructions"], default="calls")
    parser.add_argument("--process", choices=["transformer", "predictor"], default="transformer")
    parser.add_argument("--load", choices=["hit", "miss"], default="hit")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=15, help="functions listed (calls)")
    parser.add_argument("--keep", default="", help="a folder to copy the counters' outputs and logs into "
                                                   "(callgrind_annotate, pstats), for a profile of where they go")
    parser.add_argument("--before_python", default=sys.executable,
                        help="the interpreter (virtual environment) the --before side runs in: its own "
                             "dependencies, when this checkout pins others (e.g. main's .venv/bin/python)")
    args = parser.parse_args()
    if args.counter == "instructions" and not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        parser.error("--counter instructions needs valgrind (apt-get install valgrind)")
    if args.process == "predictor" and args.load == "hit":
        parser.error("the predictor has no cache: use --load miss with --process predictor")
    from harness.random_model import build_random_model

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        model_dir = build_random_model(out / "tiny")
        old = extract(args.before, out / "before")
        cache = RedisProcess(out / "redis.log").start()
        predictor = None
        if args.process == "transformer":  # the one the transformers call, this checkout's, outside the count
            predictor = ServerProcess("predictor", [*PREDICTOR_ARGS, "--model_dir", str(model_dir)],
                                      out / "predictor.log").start()
        try:
            before, after = (measure(root, name, args, out, model_dir, predictor, cache.url, python)
                             for root, name, python in ((old, "before", args.before_python),
                                                        (ROOT, "after", sys.executable)))
        finally:
            if predictor is not None:
                predictor.stop()
            cache.stop()
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            for path in (*out.glob("before.*"), *out.glob("after.*")):
                shutil.copy(path, Path(args.keep) / path.name)
        what = f"per {'cached' if args.load == 'hit' else 'uncached'} request to the {args.process}"
        if args.counter == "instructions":
            old_ir, new_ir = (instructions_per_request(path, args.requests) for path in (before, after))
            print(f"instructions {what}: {args.before} {old_ir:,.0f}, this checkout {new_ir:,.0f} "
                  f"({100 * (new_ir / old_ir - 1):+.1f}%)")
            return
        sent = sum(map(len, workload(args.load, args.requests)))  # the profile covers the whole run
        old_calls, new_calls = calls_per_request(before, old, sent), calls_per_request(after, ROOT, sent)
    total_before, total_after = sum(old_calls.values()), sum(new_calls.values())
    print(f"calls {what}: {args.before} {total_before:.1f}, this checkout {total_after:.1f} "
          f"({100 * (total_after / total_before - 1):+.1f}%)")
    changed = sorted(set(old_calls) | set(new_calls), key=lambda k: -abs(new_calls.get(k, 0) - old_calls.get(k, 0)))
    for key in changed[:args.top]:
        print(f"{new_calls.get(key, 0) - old_calls.get(key, 0):+7.1f}  {key}")


if __name__ == "__main__":
    main()
