"""The benchmark's client: ``python -m bench.loadgen``, one JSON summary on stdout.

It runs in a process of its own so that its CPU is not the measured server's. Two
modes: ``closed`` keeps ``--concurrency`` requests in flight for ``--duration_s``
(saturation throughput, the reference mix); ``open`` sends at a fixed ``--rate``
(Poisson arrivals) and times each request from when it was due, not from when it
went out, so a server that falls behind shows it in the latencies instead of
quietly slowing the client down (coordinated omission).

Texts: each request takes the next unused line of ``--texts`` (one text per
request, never repeated: every one is a cache miss) except that, with
``--hot`` and ``--cache_rate``, that fraction of requests picks a text from the hot
set instead (pre-warmed by the caller: cache hits).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np


class Texts:
    def __init__(self, cold: list[str], hot: list[str], cache_rate: float, seed: int = 0, repeat: bool = False):
        self.cold, self.hot, self.cache_rate = cold, hot, cache_rate
        self.next_cold = 0
        self.random = random.Random(seed)
        self.repeat = repeat  # cycle through the texts: for a predictor alone, which caches nothing (bench/gpu.py)

    def next(self) -> str:
        if self.hot and self.random.random() < self.cache_rate:
            return self.random.choice(self.hot)
        if self.repeat:
            self.next_cold += 1
            return self.cold[(self.next_cold - 1) % len(self.cold)]
        if self.next_cold == len(self.cold):
            raise SystemExit(f"loadgen: ran out of distinct texts after {len(self.cold)} requests")
        self.next_cold += 1
        return self.cold[self.next_cold - 1]


# One text per request, in the body each server's own clients send (the peers in bench/peers.py
# speak Infinity's /classify and the Open Inference Protocol's V2 infer).
PAYLOADS = {
    "instances": lambda text, model: {"instances": [text]},  # KServe V1 (ours, the baseline)
    "infinity": lambda text, model: {"input": [text], "model": model, "raw_scores": False},
    "v2": lambda text, model: {"inputs": [{"name": "args", "shape": [1], "datatype": "BYTES", "data": [text]}]},
}


async def _send(session: aiohttp.ClientSession, url: str, body: dict, timeout_s: float) -> int:
    try:
        async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
            await r.read()
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return 0  # connection failure or client-side timeout: an error, never dropped


async def run(args, texts: Texts) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(due: float) -> None:
            body = PAYLOADS[args.payload](texts.next(), args.model)
            if args.texts_per_request > 1:  # a client batch: KServe V1 instances only
                body["instances"] += [texts.next() for _ in range(args.texts_per_request - 1)]
            if args.parameters:  # e.g. {"truncation": "chunks"} (bench/features.py)
                body["parameters"] = args.parameters
            status = await _send(session, args.url, body, args.timeout_s)
            latencies.append(time.perf_counter() - due)
            statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        stop = started + args.duration_s
        if args.mode == "closed":

            async def worker() -> None:
                while time.perf_counter() < stop:
                    await one(time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        else:
            rng, tasks, due = np.random.default_rng(0), [], started
            while due < stop:
                due += rng.exponential(1 / args.rate)
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                tasks.append(asyncio.create_task(one(due)))
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    errors = sum(count for status, count in statuses.items() if status != 200)
    return {
        "requests": len(latencies), "errors": errors, "statuses": {str(k): v for k, v in statuses.items()},
        "seconds": round(elapsed, 2), "rps": round((len(latencies) - errors) / elapsed, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1), "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1), "max_ms": round(float(ms.max()), 1),
        "cold_texts_used": texts.next_cold,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="POST endpoint taking one text in --payload's shape")
    parser.add_argument("--payload", choices=sorted(PAYLOADS), default="instances",
                        help="request body: KServe V1 instances, Infinity's /classify, or V2 infer with BYTES")
    parser.add_argument("--model", default="bench", help="model name, for payloads that carry one")
    parser.add_argument("--texts", type=Path, required=True, help="distinct texts, one per line")
    parser.add_argument("--hot", type=Path, default=None, help="the hot set, one per line")
    parser.add_argument("--cache_rate", type=float, default=0.0)
    parser.add_argument("--mode", choices=("closed", "open"), default="closed")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second (open mode)")
    parser.add_argument("--duration_s", type=float, default=20.0)
    parser.add_argument("--timeout_s", type=float, default=30.0)
    parser.add_argument("--texts_per_request", type=int, default=1, help="texts in each request (payload instances)")
    parser.add_argument("--repeat", action="store_true",
                        help="cycle through --texts instead of stopping when they run out (a predictor has no cache)")
    parser.add_argument("--parameters", type=json.loads, default=None,
                        help='a V1 parameters object sent with every request, e.g. \'{"truncation": "chunks"}\'')
    args = parser.parse_args()
    hot = args.hot.read_text().splitlines() if args.hot else []
    if args.texts_per_request > 1 and args.payload != "instances":
        parser.error("--texts_per_request applies to --payload instances only")
    texts = Texts(args.texts.read_text().splitlines(), hot, args.cache_rate, repeat=args.repeat)
    json.dump(asyncio.run(run(args, texts)), sys.stdout)


if __name__ == "__main__":
    main()
