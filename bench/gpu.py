"""The GPU measurement, one command: ``python -m bench.gpu --out DIR`` (docs/gpu.md says how to run it).

In one run on one machine, the GPU predictor beside our onnx-int8 predictor on the same
machine's CPUs:

1. ``forward``: texts/s of one forward pass of the full-size DistilBERT (random weights
   built from ``DistilBertConfig()``'s sizes: the compute of the production DistilBERT
   SST-2; its answers mean nothing) at batch 1, 32 and 256 of 16 and 64 tokens, through
   the served backends' own code (predictor/backends.py): ``torch-cuda`` and ``onnx-int8``.
2. ``served``: ``python -m predictor`` on that model, under closed-loop load from
   bench/loadgen.py at 1, 16, 64 and 256 clients, one text and 32 texts per request:
   req/s, texts/s, p50/p99 and, for the GPU, its utilisation and memory (nvidia-smi).
3. ``workers``: the GPU predictor with ``--workers`` 1, 2, 4 and 8 at 256 clients of one
   text each (where the HTTP path and the tokenizer, not the GPU, are the limit): the
   fewest workers within 10% of the best req/s is what the chart's GPU profile should run.

Prints one table per part and writes everything to ``DIR/gpu.json``. ``--device cpu
--tiny`` runs the same steps with no GPU on a tiny model (the CPU backend ``torch``
standing in for ``torch-cuda``): tests/integration/test_gpu_bench.py does, so that this
script still runs the day a GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from bench.gpu_parts import GpuSampler, build_distilbert, child_env, forward_rate, load, synthetic_texts
from harness.processes import ROOT, ServerProcess

NAME = "bench"


def machine(device: str) -> dict:
    import torch

    info = {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    # What CUDA torch adds to an image, installed (docs/gpu.md's image size estimate starts from the wheels).
    info["installed_mb"] = {name: installed_mb(name) for name in ("torch", "nvidia", "triton")}
    return info


def installed_mb(package: str) -> int | None:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return round(sum(f.stat().st_size for root in spec.submodule_search_locations
                     for f in Path(root).rglob("*") if f.is_file()) / 1e6)


def forward_table(gpu_backend: str, model_dir: Path, cache: Path, batches, tokens, seconds: float) -> list[dict]:
    from predictor.backends import load_backend
    from predictor.files import resolve

    rows = []
    onnx = resolve(model_dir, model_dir.name, cache, "onnx-int8")  # exported once, here, as an image build would
    for backend_name, weights in ((gpu_backend, model_dir), ("onnx-int8", onnx.weights)):
        backend = load_backend(backend_name, weights, 0)  # 0 threads: one per core, the served default
        for count in tokens:
            for batch in batches:
                row = {"backend": backend_name, **forward_rate(backend, batch, count, seconds)}
                print(f"  forward {row}", flush=True)
                rows.append(row)
        del backend
    return rows


def serve(backend: str, model_dir: Path, out: Path, workers: int) -> ServerProcess:
    args = ["--model_name", NAME, "--model_dir", str(model_dir), "--backend", backend, "--workers", str(workers),
            "--model_cache_dir", str(out / "cache"), "--request_timeout_s", "60", "--max_queue_texts", "1000000",
            "--access_log", "false"]
    log = out / f"predictor-{backend}-w{workers}.log"
    return ServerProcess("predictor", args, log, env=child_env()).start(ready_timeout_s=600)


def served_table(backend: str, model_dir: Path, out: Path, texts: Path, args, workers: int = 1) -> list[dict]:
    rows = []
    server = serve(backend, model_dir, out, workers)
    try:
        url = f"{server.url}/v1/models/{NAME}:predict"
        for per_request in args.texts_per_request:
            for clients in args.clients:
                with GpuSampler() as gpu:
                    row = load(url, texts, clients, per_request, args.duration_s, args.loadgen_processes)
                row = {"backend": backend, "workers": workers, **row, **gpu.summary()}
                print(f"  served {row}", flush=True)
                rows.append(row)
    finally:
        server.stop()
    return rows


def workers_table(backend: str, model_dir: Path, out: Path, texts: Path, args) -> tuple[list[dict], int]:
    rows = []
    for workers in args.workers:
        server = serve(backend, model_dir, out, workers)
        try:
            with GpuSampler() as gpu:
                row = load(f"{server.url}/v1/models/{NAME}:predict", texts, max(args.clients), 1, args.duration_s,
                           args.loadgen_processes)
        finally:
            server.stop()
        rows.append({"backend": backend, "workers": workers, **row, **gpu.summary()})
        print(f"  workers {rows[-1]}", flush=True)
    best = max(row["rps"] for row in rows)
    needed = min(row["workers"] for row in rows if row["rps"] >= 0.9 * best)
    return rows, needed


def table(title: str, rows: list[dict], columns: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c))) for r in rows)) for c in columns]
    lines = [title, "  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(str(r.get(c)).rjust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)


def report(result: dict) -> str:
    served = ["backend", "workers", "clients", "texts_per_request", "rps", "texts_per_s", "p50_ms", "p99_ms", "errors",
              "gpu_util_pct", "gpu_mem_mib"]
    return "\n\n".join([
        f"machine: {json.dumps(result['machine'])}\nmodel: {result['model']}",
        table("forward pass (texts/s of one backend call; no HTTP, no tokenizer)", result["forward"],
              ["backend", "batch", "tokens", "texts_per_s", "ms_per_call"]),
        table("served (closed loop: clients in flight; p50/p99 are the worst loadgen process's)", result["served"],
              served),
        table(f"workers feeding the GPU ({max(result['args']['clients'])} clients, 1 text each): "
              f"{result['workers_needed']} needed", result["workers"], served),
    ])


def ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-gpu", help="gpu.json and the logs")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the CPU backend `torch` stands in for torch-cuda (to test this script)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer, 32-wide model instead of the full size")
    parser.add_argument("--batches", type=ints, default=[1, 32, 256], help="forward-pass batch sizes")
    parser.add_argument("--tokens", type=ints, default=[16, 64], help="forward-pass tokens per text")
    parser.add_argument("--forward_s", type=float, default=3.0, help="seconds per forward-pass figure")
    parser.add_argument("--clients", type=ints, default=[1, 16, 64, 256], help="clients in flight")
    parser.add_argument("--texts_per_request", type=ints, default=[1, 32])
    parser.add_argument("--duration_s", type=float, default=8.0, help="seconds per served figure")
    parser.add_argument("--workers", type=ints, default=[1, 2, 4, 8], help="--workers levels of the GPU predictor")
    parser.add_argument("--loadgen_processes", type=int, default=4, help="client processes sharing the clients")
    parser.add_argument("--skip_cpu_served", action="store_true", help="leave out the onnx-int8 served table")
    args = parser.parse_args()

    gpu_backend = "torch-cuda" if args.device == "cuda" else "torch"
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model_dir = build_distilbert(args.out / "distilbert", full_size=not args.tiny)
    texts = args.out / "texts.txt"
    texts.write_text("\n".join(synthetic_texts(20_000)) + "\n")
    result = {"machine": machine(args.device), "args": {k: str(v) if isinstance(v, Path) else v
                                                       for k, v in vars(args).items()},
              "model": f"DistilBERT {'tiny (2 layers, 32 wide)' if args.tiny else 'full size (6 layers, 768 wide)'}, "
                       "random weights (speed only)"}
    # gpu.json is rewritten after each part: a run cut short by a lease's time limit keeps what it measured.
    def save() -> None:
        (args.out / "gpu.json").write_text(json.dumps(result, indent=1))

    print(f"forward passes ({gpu_backend}, onnx-int8)", flush=True)
    result["forward"] = forward_table(gpu_backend, model_dir, args.out / "cache", args.batches, args.tokens,
                                      args.forward_s)
    save()
    print("served", flush=True)
    result["served"] = served_table(gpu_backend, model_dir, args.out, texts, args)
    save()
    if not args.skip_cpu_served:
        result["served"] += served_table("onnx-int8", model_dir, args.out, texts, args)
        save()
    print("workers", flush=True)
    result["workers"], result["workers_needed"] = workers_table(gpu_backend, model_dir, args.out, texts, args)
    result["seconds"] = round(time.perf_counter() - started, 1)
    save()
    print("\n" + report(result) + f"\n\n{args.out / 'gpu.json'} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
