"""Scale from zero, measured with the images (``make bench-images``; BENCHMARKS.md, "Scale from zero").

For each image: its size, its compressed size (``save | gzip``, what a registry stores
and a node pulls) and the pull time that implies at ``--bandwidth_mb_s``; the container's
cold start (``run`` until ``/v2/health/ready`` answers 200), median of ``--runs``; the
peak RSS of its PID 1 after one request. Then the first answer after idle, end to end:

- split (the chart's default): the request wakes the transformer; once it is ready the
  activator hands it the request, and its call to the predictor wakes the predictor,
  which must become ready before the call is answered: two cold starts in series
  (this harness starts the predictor when the transformer is ready, as the activator would).
- collocated (``transformer.collocated``): one pod, both containers start together, the
  request goes in once the transformer reports ready (it checks the model container).

Every container runs with the chart's args, env, securityContext and limits
(harness/containers.py). Pulls are not timed here (no registry): the figure is computed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from harness.containers import (
    ENGINE,
    REGISTRY,
    Container,
    engine_name,
    image_bytes,
    predictor_container,
    rendered,
    transformer_container,
)
from harness.processes import RedisProcess, free_port

V1 = "/v1/models/sentiment:predict"


def compressed_bytes(image: str) -> int:
    save = subprocess.Popen([*ENGINE, "save", image], stdout=subprocess.PIPE)
    gzip = subprocess.run(["gzip", "-c"], stdin=save.stdout, stdout=subprocess.PIPE, check=True)
    save.wait()
    return len(gzip.stdout)


def first_answer(transformer: Container) -> float:
    response = httpx.post(f"{transformer.url}{V1}", json={"instances": [f"first after idle {uuid.uuid4().hex}"]},
                          timeout=60)
    response.raise_for_status()
    return time.monotonic()


def cold_start(component: dict, runs: int, redis: RedisProcess, predictor_host: str | None = None) -> dict:
    starts, rss = [], []
    for _ in range(runs):
        if predictor_host is None:
            container = predictor_container(component)
        else:
            container = transformer_container(component, redis.url, predictor_host)
        try:
            starts.append(container.run().wait_ready())
            if predictor_host is None:
                httpx.post(f"{container.url}{V1}", json={"instances": ["one request"]}, timeout=60).raise_for_status()
            rss.append(container.peak_rss_mb())
        finally:
            container.remove()
    return {"start_to_ready_s": statistics.median(starts), "runs_s": starts, "peak_rss_mb": max(rss)}


def split_chain(service: dict, redis: RedisProcess) -> dict:
    predictor = predictor_container(service["spec"]["predictor"])
    transformer = transformer_container(service["spec"]["transformer"], redis.url, f"127.0.0.1:{predictor.http_port}")
    try:
        arrived = time.monotonic()
        transformer.run().wait_ready()
        transformer_ready = time.monotonic()
        predictor.run().wait_ready()
        predictor_ready = time.monotonic()
        answered = first_answer(transformer)
        return {"transformer_ready_s": transformer_ready - arrived, "predictor_ready_s": predictor_ready - arrived,
                "first_answer_s": answered - arrived}
    finally:
        transformer.remove()
        predictor.remove()


def collocated_chain(redis: RedisProcess) -> dict:
    component = rendered("transformer.collocated=true")["sentiment"]["spec"]["predictor"]
    predictor = predictor_container(component, container="kserve-container")
    transformer = transformer_container(component, redis.url, f"localhost:{predictor.http_port}",
                                        container="transformer-container")
    try:
        arrived = time.monotonic()
        transformer.run()
        predictor.run()
        transformer.wait_ready()
        ready = time.monotonic()
        answered = first_answer(transformer)
        return {"pod_ready_s": ready - arrived, "first_answer_s": answered - arrived}
    finally:
        transformer.remove()
        predictor.remove()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bandwidth_mb_s", type=float, default=100.0,
                        help="registry to node bandwidth for the implied pull time (MB/s)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/coldstart.json"))
    parser.add_argument("--skip_gzip", action="append", default=[], help="image labels whose gzip size is not measured")
    args = parser.parse_args()
    if engine_name() is None:
        raise SystemExit("bench.coldstart: no container engine can run here")
    services = rendered()
    service = services["sentiment"]
    images = {
        "predictor (slim, sentiment)": service["spec"]["predictor"]["containers"][0]["image"],
        "predictor (slim, emotion)": services["emotion"]["spec"]["predictor"]["containers"][0]["image"],
        "predictor (torch, sentiment)": service["spec"]["predictor"]["containers"][0]["image"] + "-torch",
        "transformer": service["spec"]["transformer"]["containers"][0]["image"],
        # make images MODEL_SRC=build/distilbert-full (bench.run's model: DistilBertConfig(), random weights)
        "predictor (slim, full-size DistilBERT)": f"{REGISTRY}/predictor:distilbert-full-0.1.0",
    }
    report: dict = {"machine": platform.processor() or platform.machine(), "bandwidth_mb_s": args.bandwidth_mb_s,
                    "load_before": open("/proc/loadavg").read().split()[:3], "images": {}}
    redis = RedisProcess(Path("/tmp") / f"coldstart-redis-{free_port()}.log").start()
    try:
        report["cold_start"] = {"predictor": cold_start(service["spec"]["predictor"], args.runs, redis)}
        helper = predictor_container(service["spec"]["predictor"])
        try:
            helper.run().wait_ready()
            report["cold_start"]["transformer"] = cold_start(service["spec"]["transformer"], args.runs, redis,
                                                             f"127.0.0.1:{helper.http_port}")
        finally:
            helper.remove()
        print("cold start", json.dumps(report["cold_start"]), flush=True)
        report["split"] = [split_chain(service, redis) for _ in range(args.runs)]
        report["collocated"] = [collocated_chain(redis) for _ in range(args.runs)]
    finally:
        redis.stop()
    for label, image in images.items():
        size = image_bytes(image)
        if size is None:
            print(f"{label}: {image} is not built, skipped", flush=True)
            continue
        packed = size if label in args.skip_gzip else compressed_bytes(image)
        report["images"][label] = {"image": image, "mb": size / 1e6, "gzip_mb": packed / 1e6,
                                   "pull_s": packed / 1e6 / args.bandwidth_mb_s}
        print(label, json.dumps(report["images"][label]), flush=True)
    for layout in ("split", "collocated"):
        report[f"{layout}_first_answer_median_s"] = statistics.median(r["first_answer_s"] for r in report[layout])
        print(layout, json.dumps(report[layout]), flush=True)
    report["load_after"] = open("/proc/loadavg").read().split()[:3]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
