"""The reference design the benchmark compares against: ``python -m bench.baseline``.

DistilBERT SST-2 behind FastAPI + Redis, as the published reference system built it:
the transformers ``text-classification`` pipeline (``top_k=None``) called once per
request in Starlette's thread pool, a Redis cache keyed on the whole request body,
and a 504 when inference outlives the timeout. It is kept faithful on purpose (same
model directory, same torch threads as ours): do not optimise it here, or the
comparison stops meaning anything. Not for production.

    POST /predict  {"instances": ["text", ...]}  ->  {"predictions": [[{"label", "score"}, ...], ...]}
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json

import redis.asyncio as redis
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool


def create_app(model_dir: str, redis_url: str, timeout_s: float, ttl_s: int = 86_400) -> FastAPI:
    from transformers import pipeline

    classify = pipeline("text-classification", model=model_dir, top_k=None, device="cpu")
    classify("warm-up")
    cache = redis.Redis.from_url(redis_url)
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body = await request.body()
        key = "baseline:" + hashlib.sha256(body).hexdigest()
        cached = await cache.get(key)
        if cached is not None:
            return Response(cached, media_type="application/json", headers={"x-cache": "hit"})
        try:
            texts = json.loads(body)["instances"]
        except (ValueError, KeyError, TypeError) as exc:
            raise HTTPException(400, f"expected {{'instances': [...]}}: {exc}") from None
        try:
            predictions = await asyncio.wait_for(run_in_threadpool(classify, texts), timeout_s)
        except TimeoutError:
            raise HTTPException(504, "inference timed out") from None
        payload = json.dumps({"predictions": predictions}).encode()
        await cache.set(key, payload, ex=ttl_s)
        return Response(payload, media_type="application/json", headers={"x-cache": "miss"})

    @app.get("/health")
    async def health() -> dict:
        return {"ready": True}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--redis_url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--http_port", type=int, default=8000)
    parser.add_argument("--timeout_s", type=float, default=10.0)
    parser.add_argument("--torch_threads", type=int, default=0, help="the same setting as the predictor under test")
    args = parser.parse_args()
    if args.torch_threads > 0:
        import torch

        torch.set_num_threads(args.torch_threads)
    uvicorn.run(create_app(args.model_dir, args.redis_url, args.timeout_s), host="127.0.0.1", port=args.http_port,
                log_level="warning")


if __name__ == "__main__":
    main()
