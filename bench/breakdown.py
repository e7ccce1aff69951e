"""Where a forward pass spends its time: ``python -m bench.breakdown [--backend onnx-int8]``.

Runs the bench model (bench/run.py's full-size DistilBERT) through ONNX Runtime's own
profiler at the two batch shapes that matter (1 text, as a lone client sends; 16 texts,
as 16 clients make) and sums the kernel time by operator type, then times the other
per-request pieces outside the model (tokenizing, padding, the softmax) and, for
OpenVINO backends, the whole call. Then (``--lone_requests``, default 500) the same
model served by the predictor, one request at a time over REST, each request's
latency split by the predictor's own timing headers (contract/timings.py) into the
client's side, the serving path and the model. Prints markdown tables; BENCHMARKS.md
quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.run import MODEL, bench_model, sentences
from harness.processes import ROOT, ServerProcess
from predictor.backends import BACKENDS
from predictor.classifier import TextClassifier
from predictor.files import resolve


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def ort_profile(path: Path, ids: np.ndarray, mask: np.ndarray, threads: int, repeats: int) -> dict[str, float]:
    """Kernel milliseconds per call by operator type, from ONNX Runtime's profiler."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(repeats + 1):
        session.run(None, {"input_ids": ids, "attention_mask": mask})
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"] / 1000 / (repeats + 1)
    return dict(sorted(by_op.items(), key=lambda item: -item[1]))


def lone_requests(model_dir: Path, backend: str, texts: list[str], requests: int, log: Path) -> dict[str, float]:
    """Median milliseconds of each part of a lone V1 request to a served predictor (one text, nothing else in flight)."""
    import httpx

    from contract import timings

    predictor = ServerProcess("predictor", ["--model_name", MODEL, "--model_dir", str(model_dir), "--model_version",
                                            "bench", "--backend", backend, "--access_log", "false"], log).start()
    parts: dict[str, list[float]] = defaultdict(list)
    try:
        with httpx.Client(timeout=30) as client:
            url = f"http://127.0.0.1:{predictor.http_port}/v1/models/{MODEL}:predict"
            for i, text in enumerate(texts[:requests + 20]):
                started = time.perf_counter()
                answer = client.post(url, json={"instances": [text]})
                seen_ms = (time.perf_counter() - started) * 1000
                answer.raise_for_status()
                if i < 20:  # warm-up
                    continue
                header = {name: float(answer.headers[name]) for name in
                          (timings.TOTAL_TIME, timings.QUEUE_TIME, timings.TOKENIZATION_TIME, timings.INFERENCE_TIME)}
                parts["client sees"].append(seen_ms)
                parts["client and network (sees - x-total-time)"].append(seen_ms - header[timings.TOTAL_TIME])
                parts["x-total-time"].append(header[timings.TOTAL_TIME])
                parts["serving path (total - queue - tokenization - inference)"].append(
                    header[timings.TOTAL_TIME] - header[timings.QUEUE_TIME] - header[timings.TOKENIZATION_TIME]
                    - header[timings.INFERENCE_TIME])
                for name in (timings.QUEUE_TIME, timings.TOKENIZATION_TIME, timings.INFERENCE_TIME):
                    parts[name].append(header[name])
    finally:
        predictor.stop()
    return {name: float(np.median(values)) for name, values in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="onnx-int8", choices=BACKENDS)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--lone_requests", type=int, default=500, help="served lone requests to split (0: none)")
    args = parser.parse_args()
    model_dir = bench_model(args.cache)
    files = resolve(model_dir, "bench", args.cache, args.backend)
    classifier = TextClassifier(files, max_length=512, max_batch_tokens=16384, threads=args.threads)
    texts = sentences()
    print(f"backend `{args.backend}`, {args.threads} threads, load {os.getloadavg()[0]:.1f}\n")
    print("| batch | tokenize + pad ms | model call ms | whole classify() ms | top operators (ms per call) |")
    print("|---|---|---|---|---|")
    for batch in (1, 16):
        chunk = texts[:batch]
        rows = classifier.token_ids(chunk)
        ids, mask = classifier._padded(rows)
        prep = _median_ms(lambda: classifier._padded(classifier.token_ids(chunk)), args.repeats)  # noqa: B023
        call = _median_ms(lambda: classifier.backend(ids, mask), args.repeats)  # noqa: B023
        whole = _median_ms(lambda: classifier.classify(chunk), args.repeats)  # noqa: B023
        ops = ""
        if args.backend.startswith("onnx"):
            profile = ort_profile(files.weights, ids, mask, args.threads, args.repeats)
            total = sum(profile.values())
            ops = ", ".join(f"{op} {ms:.2f} ({ms / total:.0%})" for op, ms in list(profile.items())[:6])
        print(f"| {batch} x {ids.shape[1]} tokens | {prep:.2f} | {call:.2f} | {whole:.2f} | {ops} |")
    if args.lone_requests:
        with tempfile.TemporaryDirectory() as scratch:
            parts = lone_requests(model_dir, args.backend, texts, args.lone_requests, Path(scratch) / "predictor.log")
        print(f"\n{args.lone_requests} lone requests to the served predictor (one text each, SST-2 sentences), "
              "medians:\n\n| part | ms |\n|---|---|")
        for name, ms in parts.items():
            print(f"| {name} | {ms:.2f} |")


if __name__ == "__main__":
    main()
