"""``python -m bench.features``: what explanations and long-text truncation cost, and that the plain path did not slow.

1. Hot path, A/B in one run: the predictor and transformer of ``--base`` (a git ref,
   extracted with ``git archive``) and of this checkout take turns (A B, then B A, ...)
   on the same Redis, bundled model and texts: uncached throughput through the
   transformer (16 clients) and the reference mix (10 clients, 95% cached). The ratio
   this/base is the figure; the absolute numbers drift with the machine's load.
2. Cost, this checkout's predictor alone: one text per request, ``:predict`` against
   ``:explain`` (texts/s at 8 clients, and latency at 1 client), and long texts
   (``--long_tokens`` tokens each) under ``head``, ``head_tail`` and ``chunks``.

Prints each measurement as it goes and writes ``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import httpx

from bench.run import loadgen, machine, sentences
from harness.processes import ROOT, RedisProcess, ServerProcess, extract

MODEL = "sentiment"  # the bundled model: what `make serve` runs


class Trees:
    def __init__(self, out: Path, base: str):
        self.out = out
        self.base = out / "base"
        if not self.base.is_dir():
            extract(base, self.base)
        self.cache = out / "model-cache"  # both trees' bundled model is merged and exported once

    def predictor(self, root: Path, name: str, *extra: str) -> ServerProcess:
        args = ["--model_name", MODEL, "--model_cache_dir", str(self.cache), "--model_version", "bench", *extra]
        return ServerProcess("predictor", args, self.out / f"{name}-predictor.log",
                             root=root).start(ready_timeout_s=600)

    def transformer(self, root: Path, name: str, predictor: ServerProcess, redis_url: str) -> ServerProcess:
        args = ["--model_name", MODEL, "--predictor_host", f"127.0.0.1:{predictor.http_port}", "--redis_url", redis_url]
        return ServerProcess("transformer", args, self.out / f"{name}-transformer.log",
                             root=root).start()


class Load:
    def __init__(self, out: Path, duration_s: float):
        self.out, self.duration_s = out, duration_s
        self.texts = sentences()
        self.used = 0

    def file(self, name: str, texts: list[str]) -> Path:
        path = self.out / f"texts-{name}.txt"
        path.write_text("\n".join(texts))
        return path

    def fresh(self, count: int) -> list[str]:
        if self.used + count > len(self.texts):
            self.used = 0
        chunk = self.texts[self.used : self.used + count]
        self.used += count
        return chunk

    def run(self, url: str, name: str, texts: Path, *extra: str) -> dict:
        return loadgen(url, name, texts, self.duration_s, *extra)


def uptime() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def hot_path(trees: Trees, load: Load, rounds: int) -> dict:
    import redis

    store = RedisProcess(trees.out / "redis.log").start()
    results: dict = {"base": [], "this": []}
    try:
        for round_ in range(rounds):
            order = [("base", trees.base), ("this", ROOT)]
            for name, root in order if round_ % 2 == 0 else order[::-1]:
                predictor = trees.predictor(root, name)
                transformer = trees.transformer(root, name, predictor, store.url)
                url = f"{transformer.url}/v1/models/{MODEL}:predict"
                try:
                    redis.Redis.from_url(store.url).flushall()
                    cold = load.file(f"{name}-cold", load.fresh(int(load.duration_s * 400)))
                    uncached = load.run(url, f"round {round_} {name} uncached", cold, "--concurrency", "16")
                    hot_texts = load.fresh(50)
                    for text in hot_texts:
                        httpx.post(url, json={"instances": [text]}, timeout=30).raise_for_status()
                    mix = load.run(url, f"round {round_} {name} mix", load.file(f"{name}-mixcold", load.fresh(
                        int(load.duration_s * 200))), "--concurrency", "10", "--hot", str(load.file("hot", hot_texts)),
                        "--cache_rate", "0.95")
                    results[name].append({"uncached_rps": uncached["rps"], "mix_rps": mix["rps"],
                                          "mix_p99_ms": mix["p99_ms"], "errors": uncached["errors"] + mix["errors"],
                                          "load": uptime()})
                finally:
                    transformer.stop()
                    predictor.stop()
    finally:
        store.stop()
    summary = {}
    for key in ("uncached_rps", "mix_rps", "mix_p99_ms"):
        base = sum(r[key] for r in results["base"]) / rounds
        this = sum(r[key] for r in results["this"]) / rounds
        summary[key] = {"base": round(base, 1), "this": round(this, 1), "ratio": round(this / base, 3)}
    return {"rounds": results, "summary": summary}


def long_texts(count: int, tokens: int, seed: int = 0) -> list[str]:
    """Texts of about ``tokens`` tokens: SST-2 phrases joined (about 1.3 tokens a word)."""
    pool, rng, texts = sentences(seed + 1), random.Random(seed), []
    for _ in range(count):
        words: list[str] = []
        while len(words) * 1.3 < tokens:
            words += rng.choice(pool).split()
        texts.append(" ".join(words))
    return texts


def costs(trees: Trees, load: Load, long_tokens: int) -> dict:
    predictor = trees.predictor(ROOT, "cost")
    base = f"{predictor.url}/v1/models/{MODEL}"
    results: dict = {}
    try:
        for verb in ("predict", "explain"):
            texts = load.file(f"cost-{verb}", load.fresh(int(load.duration_s * 300)))
            results[verb] = {
                "throughput": load.run(f"{base}:{verb}", f"{verb} 8 clients", texts, "--concurrency", "8"),
                "latency": load.run(f"{base}:{verb}", f"{verb} 1 client",
                                    load.file(f"cost-{verb}-1", load.fresh(int(load.duration_s * 100))),
                                    "--concurrency", "1"),
            }
        longs = load.file("long", long_texts(int(load.duration_s * 20), long_tokens))
        for strategy in ("head", "head_tail", "chunks"):
            results[strategy] = load.run(f"{base}:predict", f"long texts, {strategy}, 4 clients", longs,
                                         "--concurrency", "4", "--parameters", json.dumps({"truncation": strategy}))
    finally:
        predictor.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="main", help="git ref whose servers the hot path is compared with")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / time.strftime("features-%Y%m%d-%H%M"))
    parser.add_argument("--duration_s", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds of the hot path (order alternates)")
    parser.add_argument("--long_tokens", type=int, default=1200)
    parser.add_argument("--skip", choices=("hot_path", "costs"), action="append", default=[])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    trees, load = Trees(args.out, args.base), Load(args.out, args.duration_s)
    results = {"machine": machine(), "load_before": uptime(), "base": args.base}
    if "costs" not in args.skip:
        results["costs"] = costs(trees, load, args.long_tokens)
    if "hot_path" not in args.skip:
        results["hot_path"] = hot_path(trees, load, args.rounds)
    results["load_after"] = uptime()
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "costs"} | {"costs": {
        k: (v.get("throughput", v) if isinstance(v, dict) else v) for k, v in results.get("costs", {}).items()}},
        indent=1))


if __name__ == "__main__":
    main()
