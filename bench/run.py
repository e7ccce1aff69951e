"""``make bench``: our stack against the reference design, side by side, in one run on one machine.

    python -m bench.run                # every case, 20 s per measurement (~10 min)
    python -m bench.run --duration_s 5 --cold_starts 1 --backends onnx-int8   # a quick look

The model is a full-size DistilBERT (``DistilBertConfig()``: 6 layers, 768 wide, 12
heads, 2 labels) with random weights and the real uncased tokenizer: the compute of
the production DistilBERT SST-2. Its ONNX graphs are exported before anything is
timed, as an image build does. The texts are real SST-2 sentences, each sent once
unless a case asks for repeats; every case gets its own Redis flush.

Cases (ours / baseline / ratio): (1) uncached saturation throughput, 16 concurrent
single-text clients; (2) p50/p99 at a fixed uncached arrival rate (half the
baseline's saturation rate); (3) the reference mix: 10 concurrent users, 95% of
requests from a warmed hot set, through the transformer; (4) cold start, spawn to
ready; (5) the predictor's peak RSS. Then a table of backends and the arithmetic
limit. Results: ``<out>/results.json`` and ``<out>/results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from bench.peers import PEERS
from bench.peers.compare import compare
from bench.peers.compare import markdown as peers_markdown
from harness.processes import ROOT, SERVER_ENV, RedisProcess, ServerProcess
from predictor.backends import CPU_BACKENDS, DEFAULT_BACKEND

SHARED_SST2 = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
MODEL = "bench"
HOT_SET = 50  # distinct texts that make up the 95% "cached" share of the reference mix


def bench_model(cache: Path) -> Path:
    """Full-size DistilBERT with random weights, ONNX graphs baked in (not part of any timing)."""
    from harness.random_model import build_random_model
    from modelbuild.export import export_onnx
    from modelbuild.layout import ONNX_DIR

    model_dir = cache / "distilbert-base-random"
    if not (model_dir / "config.json").is_file():
        from transformers import DistilBertConfig

        full = DistilBertConfig()
        build_random_model(model_dir, dim=full.dim, layers=full.n_layers, heads=full.n_heads)
    if not (model_dir / ONNX_DIR).is_dir():
        export_onnx(model_dir, model_dir / ONNX_DIR)
    return model_dir


def sentences(seed: int = 0) -> list[str]:
    """Distinct real sentences: SST-2 phrases of four words or more from ../shared, else load/sentences.txt."""
    if SHARED_SST2.is_file():
        rows = [line.split("\t")[0].strip() for line in SHARED_SST2.read_text().splitlines()[1:]]
        texts = sorted({row for row in rows if len(row.split()) >= 4})
    else:
        print(f"note: {SHARED_SST2} is absent; using load/sentences.txt (few texts: keep durations short)")
        texts = sorted(set((ROOT / "load" / "sentences.txt").read_text().splitlines()))
    random.Random(seed).shuffle(texts)
    return texts


def loadgen(url: str, name: str, texts: Path, duration_s: float, *extra: str) -> dict:
    """One bench.loadgen run in a process of its own; its JSON summary, printed as it comes."""
    command = [sys.executable, "-m", "bench.loadgen", "--url", url, "--texts", str(texts),
               "--duration_s", str(duration_s), *extra]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **SERVER_ENV}, capture_output=True, text=True,
                          timeout=duration_s * 4 + 120)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    print(f"  {name}: {result}", flush=True)
    return result


class Run:
    """One benchmark run: its directory, Redis, the text supply and the collected figures."""

    def __init__(self, out: Path, duration_s: float, threads: int):
        self.out, self.duration_s, self.threads = out, duration_s, threads
        self.redis = RedisProcess(out / "redis.log").start()
        self.texts = sentences()
        self.used = 0
        self.results: dict = {}

    def text_file(self, name: str, count: int, take: bool = True) -> Path:
        """The next ``count`` unused sentences in a file; ``take=False`` leaves them in the supply.

        When the supply runs short it starts over: every case flushes Redis first and
        the predictor caches nothing, so a sentence sent again in a later case is still
        a miss (the two designs' cache keys never meet).
        """
        if self.used + count > len(self.texts):
            self.used = 0
        chunk = self.texts[self.used : self.used + count]
        self.used += len(chunk) if take else 0
        path = self.out / f"texts-{name}.txt"
        path.write_text("\n".join(chunk))
        return path

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.redis.url).flushall()

    def load(self, url: str, name: str, *extra: str) -> dict:
        """Run bench.loadgen against ``url``; the sentences it used are never sent again."""
        result = loadgen(url, name, self.text_file(name, int(self.duration_s * 1000), take=False), self.duration_s,
                         *extra)
        self.used += result["cold_texts_used"]
        return result

    # -- the servers --------------------------------------------------------------------

    def predictor(self, model_dir: Path, backend: str = DEFAULT_BACKEND, *extra: str) -> ServerProcess:
        args = ["--model_name", MODEL, "--model_dir", str(model_dir), "--model_version", "bench", "--backend", backend,
                "--threads", str(self.threads), *extra]
        return ServerProcess("predictor", args, self.out / f"predictor-{backend}.log", sample_rss=True).start()

    def transformer(self, predictor: ServerProcess) -> ServerProcess:
        args = ["--model_name", MODEL, "--predictor_host", f"127.0.0.1:{predictor.http_port}", "--redis_url",
                self.redis.url]
        return ServerProcess("transformer", args, self.out / "transformer.log", sample_rss=True).start()

    def baseline(self, model_dir: Path) -> ServerProcess:
        args = ["--model_dir", str(model_dir), "--redis_url", self.redis.url, "--torch_threads", str(self.threads)]
        return ServerProcess("bench.baseline", args, self.out / "baseline.log", ready_path="/health", grpc=False,
                             sample_rss=True).start()


def ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 2) if theirs else float("nan")


def cold_starts(run: Run, model_dir: Path, repeats: int) -> dict:
    """Case 4: median seconds from spawn to ready, ours and the baseline alternating."""
    ours, theirs = [], []
    for _ in range(repeats):
        for starter, into in ((lambda: run.predictor(model_dir), ours), (lambda: run.baseline(model_dir), theirs)):
            server = starter()
            into.append(server.cold_start_s)
            server.stop()
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    return {"ours_s": round(ours_s, 2), "baseline_s": round(theirs_s, 2), "ratio": ratio(ours_s, theirs_s),
            "ours_all": [round(x, 2) for x in ours], "baseline_all": [round(x, 2) for x in theirs]}


def warm(url: str, hot: Path) -> None:
    with httpx.Client(timeout=30) as client:
        for text in hot.read_text().splitlines():
            client.post(url, json={"instances": [text]}).raise_for_status()


def side_by_side(run: Run, model_dir: Path) -> dict:
    """Cases 1, 2, 3 and 5 with the default backend, ours and the baseline alternating case by case."""
    closed16 = ("--mode", "closed", "--concurrency", "16")
    cases: dict = {}
    predictor = run.predictor(model_dir)
    transformer = run.transformer(predictor)
    baseline = run.baseline(model_dir)
    ours_url = f"{transformer.url}/v1/models/{MODEL}:predict"
    direct_url = f"{predictor.url}/v1/models/{MODEL}:predict"
    theirs_url = f"{baseline.url}/predict"
    try:
        print("case 1: uncached saturation, 16 clients", flush=True)
        run.flush()
        theirs = run.load(theirs_url, "c1-baseline", *closed16)
        ours = run.load(ours_url, "c1-ours", *closed16)
        direct = run.load(direct_url, "c1-predictor", *closed16)
        cases["uncached_throughput"] = {"ours_rps": ours["rps"], "baseline_rps": theirs["rps"],
                                        "ratio": ratio(ours["rps"], theirs["rps"]), "predictor_only_rps": direct["rps"],
                                        "predictor_only_ratio": ratio(direct["rps"], theirs["rps"]),
                                        "errors": ours["errors"] + theirs["errors"] + direct["errors"],
                                        "ours": ours, "baseline": theirs, "predictor_only": direct}

        rate = max(1.0, round(theirs["rps"] * 0.5, 1))
        print(f"case 2: fixed uncached arrival rate {rate}/s", flush=True)
        run.flush()
        open_rate = ("--mode", "open", "--rate", str(rate))
        theirs = run.load(theirs_url, "c2-baseline", *open_rate)
        ours = run.load(ours_url, "c2-ours", *open_rate)
        cases["fixed_rate"] = {"rate_rps": rate, "ours_p50_ms": ours["p50_ms"], "ours_p99_ms": ours["p99_ms"],
                               "baseline_p50_ms": theirs["p50_ms"], "baseline_p99_ms": theirs["p99_ms"],
                               "p50_ratio": ratio(ours["p50_ms"], theirs["p50_ms"]),
                               "p99_ratio": ratio(ours["p99_ms"], theirs["p99_ms"]),
                               "errors": ours["errors"] + theirs["errors"], "ours": ours, "baseline": theirs}

        print("case 3: reference mix, 10 users, 95% cached", flush=True)
        run.flush()
        hot = run.text_file("hot", HOT_SET)
        warm(ours_url, hot)
        warm(theirs_url, hot)
        mix = ("--mode", "closed", "--concurrency", "10", "--hot", str(hot), "--cache_rate", "0.95")
        theirs = run.load(theirs_url, "c3-baseline", *mix)
        ours = run.load(ours_url, "c3-ours", *mix)
        cases["reference_mix"] = {"ours_rps": ours["rps"], "baseline_rps": theirs["rps"],
                                  "throughput_ratio": ratio(ours["rps"], theirs["rps"]),
                                  "ours_p50_ms": ours["p50_ms"], "ours_p99_ms": ours["p99_ms"],
                                  "baseline_p50_ms": theirs["p50_ms"], "baseline_p99_ms": theirs["p99_ms"],
                                  "p99_ratio": ratio(ours["p99_ms"], theirs["p99_ms"]),
                                  "errors": ours["errors"] + theirs["errors"], "ours": ours, "baseline": theirs}
    finally:
        for server in (transformer, predictor, baseline):
            server.stop()
    cases["peak_rss"] = {"ours_mb": round(predictor.peak_rss_mb), "baseline_mb": round(baseline.peak_rss_mb),
                         "ratio": ratio(predictor.peak_rss_mb, baseline.peak_rss_mb),
                         "transformer_mb": round(transformer.peak_rss_mb)}
    return cases


def backend_table(run: Run, model_dir: Path, backends: list[str]) -> dict:
    """Every backend alone: spawn-to-ready, uncached throughput straight at the predictor, peak RSS."""
    table = {}
    for backend in backends:
        server = run.predictor(model_dir, backend)
        try:
            run.flush()
            result = run.load(f"{server.url}/v1/models/{MODEL}:predict", f"backend-{backend}", "--mode", "closed",
                              "--concurrency", "16")
        finally:
            server.stop()
        table[backend] = {"cold_start_s": round(server.cold_start_s, 2), "rps": result["rps"],
                          "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
                          "peak_rss_mb": round(server.peak_rss_mb), "errors": result["errors"]}
    return table


def concurrency_sweep(run: Run, model_dir: Path, levels: list[int]) -> dict:
    """Uncached throughput and latency straight at one predictor as concurrency grows: sizes scaleTarget."""
    server = run.predictor(model_dir)
    sweep = {}
    try:
        for level in levels:
            result = run.load(f"{server.url}/v1/models/{MODEL}:predict", f"sweep-{level}", "--mode", "closed",
                              "--concurrency", str(level))
            sweep[level] = {"rps": result["rps"], "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
                            "errors": result["errors"]}
    finally:
        server.stop()
    return sweep


def int8_matmul_gops(size: int = 2048, repeats: int = 10) -> float:
    """This CPU's int8 matrix rate through ONNX Runtime's own kernel (MatMulInteger), in GOP/s."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-127, 127, (size, size), dtype=np.int8), "w")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "w"], ["y"])], "int8-peak",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [size, size])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a = rng.integers(0, 255, (size, size), dtype=np.uint8)
    session.run(None, {"a": a})
    started = time.perf_counter()
    for _ in range(repeats):
        session.run(None, {"a": a})
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def arithmetic_limit(model_dir: Path, texts: list[str], texts_per_s: float) -> dict:
    """How the achieved rate compares with what this CPU's matrix units could do at best."""
    from tokenizers import Tokenizer

    config = json.loads((model_dir / "config.json").read_text())
    d, hidden, layers = config["dim"], config["hidden_dim"], config["n_layers"]
    # Per token and layer: Q, K, V, output projections (4 d^2) and the two FFN matrices
    # (2 d h) multiply-adds; attention scores add 2 d per token of context, small here.
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokens = float(np.mean([len(e.ids) for e in tokenizer.encode_batch(texts[:2000])]))
    flops_per_token = 2 * layers * (4 * d * d + 2 * d * hidden + 2 * d * tokens)
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    started, repeats = time.perf_counter(), 10
    for _ in range(repeats):
        a @ a
    gflops = 2 * 2048**3 * repeats / (time.perf_counter() - started) / 1e9
    int8_gops = int8_matmul_gops()
    per_text = tokens * flops_per_token / 1e9
    achieved = texts_per_s * per_text
    return {"mean_tokens": round(tokens, 1), "gflop_per_text": round(per_text, 2),
            "fp32_matmul_gflops": round(gflops, 1), "int8_matmul_gops": round(int8_gops, 1),
            "ceiling_texts_per_s_fp32": round(gflops / per_text, 1),
            "ceiling_texts_per_s_int8": round(int8_gops / per_text, 1),
            "achieved_gflops": round(achieved, 1), "fraction_of_int8_peak": round(achieved / int8_gops, 2)}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load": " ".join(f"{x:.1f}" for x in os.getloadavg())}  # a shared machine: say how busy it was


def markdown(results: dict) -> str:
    m = results["machine"]
    if "cases" not in results:  # --only_peers
        return "\n".join([f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}; {m['date']}, load {m['load']}. "
                          f"Command: `{results['command']}`.", *peers_markdown(results["peers"])]) + "\n"
    c = results["cases"]
    u, f, r, s, rss = (c["uncached_throughput"], c["fixed_rate"], c["reference_mix"], c["cold_start"],
                       c["peak_rss"])
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['os']}; {m['date']}, load {m.get('load')}. "
        f"Command: `{results['command']}`.",
        f"Backend `{results['backend']}`, {results['threads']} threads for both; {results['duration_s']:g} s per "
        "measurement. Client, transformer, Redis, predictor and baseline all share these cores.",
        "",
        "| case | ours | baseline | ratio (ours / baseline) |",
        "|---|---|---|---|",
        f"| 1. uncached throughput, 16 clients, through the transformer | {u['ours_rps']} req/s | "
        f"{u['baseline_rps']} req/s | **{u['ratio']}x** |",
        f"| 1b. the same straight at the predictor | {u['predictor_only_rps']} req/s | {u['baseline_rps']} req/s | "
        f"{u['predictor_only_ratio']}x |",
        f"| 2. p50 / p99 at {f['rate_rps']} uncached req/s | {f['ours_p50_ms']} / {f['ours_p99_ms']} ms | "
        f"{f['baseline_p50_ms']} / {f['baseline_p99_ms']} ms | {f['p50_ratio']} / **{f['p99_ratio']}** |",
        f"| 3. reference mix (10 users, 95% cached): throughput | {r['ours_rps']} req/s | {r['baseline_rps']} req/s | "
        f"**{r['throughput_ratio']}x** |",
        f"| 3. reference mix: p50 / p99 | {r['ours_p50_ms']} / {r['ours_p99_ms']} ms | "
        f"{r['baseline_p50_ms']} / {r['baseline_p99_ms']} ms | p99 **{r['p99_ratio']}** |",
        f"| 4. cold start, spawn to ready (median of {len(s['ours_all'])}) | {s['ours_s']} s | {s['baseline_s']} s | "
        f"**{s['ratio']}** |",
        f"| 5. predictor peak RSS | {rss['ours_mb']} MB | {rss['baseline_mb']} MB | **{rss['ratio']}** |",
        "",
        f"Errors in all side-by-side runs: {u['errors'] + f['errors'] + r['errors']}. "
        f"Transformer peak RSS: {rss['transformer_mb']} MB.",
    ]
    if results.get("concurrency_sweep"):
        lines += ["", "| in-flight requests (one predictor, uncached) | req/s | p50 | p99 |", "|---|---|---|---|"]
        for level, point in results["concurrency_sweep"].items():
            lines.append(f"| {level} | {point['rps']} | {point['p50_ms']} ms | {point['p99_ms']} ms |")
    if results.get("backends"):
        lines += ["", "| backend | cold start | uncached req/s (16 clients, predictor only) | p99 | peak RSS |",
                  "|---|---|---|---|---|"]
        for name, b in results["backends"].items():
            lines.append(f"| `{name}` | {b['cold_start_s']} s | {b['rps']} | {b['p99_ms']} ms | {b['peak_rss_mb']} MB |")
    a = results.get("arithmetic_limit")
    if a:
        lines += ["", f"Arithmetic limit: {a['mean_tokens']} tokens per text on average, {a['gflop_per_text']} GFLOP "
                  f"per text. This CPU multiplies {a['fp32_matmul_gflops']} GFLOP/s in fp32 (numpy, 2048^2) and "
                  f"{a['int8_matmul_gops']} GOP/s in int8 (ONNX Runtime MatMulInteger, 2048^2): ceilings of "
                  f"{a['ceiling_texts_per_s_fp32']} and {a['ceiling_texts_per_s_int8']} texts/s. The predictor's "
                  f"{u['predictor_only_rps']} texts/s are {a['achieved_gflops']} GOP/s of model arithmetic, "
                  f"{a['fraction_of_int8_peak']} of the int8 peak."]
    if results.get("peers"):
        lines += peers_markdown(results["peers"])
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--duration_s", type=float, default=20.0, help="seconds per load measurement")
    parser.add_argument("--cold_starts", type=int, default=3, help="spawn-to-ready repeats per server")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="inference threads, the same for both")
    parser.add_argument("--backends", default=",".join(CPU_BACKENDS), help="backends for the table ('' for none)")
    parser.add_argument("--sweep", default="1,2,4,8,16,32", help="in-flight levels for the concurrency sweep")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="peer servers beside ours, each in its own venv under .cache/peers ('' for none)")
    parser.add_argument("--peer_rounds", type=int, default=1, help="times each server of the peer table is measured")
    parser.add_argument("--only_peers", action="store_true", help="only the peer table (make bench-peers)")
    parser.add_argument("--variants", nargs="*", default=[], metavar="NAME=FLAGS",
                        help="our predictor again with other flags, as a column of the peer table measured in the "
                             "same rounds (an A/B: e.g. 'sessions2=--inference_sessions 2 --threads 1')")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    model_dir = bench_model(args.cache)
    run = Run(args.out, args.duration_s, args.threads)
    try:
        results = {"machine": machine(), "command": "python -m bench.run " + " ".join(sys.argv[1:]),
                   "backend": DEFAULT_BACKEND, "threads": args.threads, "duration_s": args.duration_s}
        if not args.only_peers:
            print("case 4: cold start", flush=True)
            cold = cold_starts(run, model_dir, args.cold_starts)
            results["cases"] = side_by_side(run, model_dir) | {"cold_start": cold}
            results["concurrency_sweep"] = concurrency_sweep(run, model_dir,
                                                             [int(x) for x in args.sweep.split(",") if x])
            results["backends"] = backend_table(run, model_dir, [b for b in args.backends.split(",") if b])
            results["arithmetic_limit"] = arithmetic_limit(
                model_dir, run.texts, results["cases"]["uncached_throughput"]["predictor_only_rps"])
        peers = [name for name in args.peers.split(",") if name]
        variants = dict(variant.split("=", 1) for variant in args.variants)
        if peers or variants:
            print(f"peers: {', '.join([*peers, *variants])}", flush=True)
            results["peers"] = compare(run, model_dir, args.cache, peers, args.peer_rounds, max(1, args.cold_starts),
                                       {name: flags.split() for name, flags in variants.items()})
    finally:
        run.redis.stop()
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    report = markdown(results)
    (args.out / "results.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
