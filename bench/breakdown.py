"""Where a forward pass spends its time: ``python -m bench.breakdown [--backend onnx-int8]``.

Runs the bench model (bench/run.py's full-size DistilBERT) through ONNX Runtime's own
profiler at the two batch shapes that matter (1 text, as a lone client sends; 16 texts,
as 16 clients make) and sums the kernel time by operator type, then times the other
per-request pieces outside the model (tokenizing, padding, the softmax) and, for
OpenVINO backends, the whole call. Prints a markdown table; BENCHMARKS.md quotes it.
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

from bench.processes import ROOT
from bench.run import bench_model, sentences
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="onnx-int8", choices=BACKENDS)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=50)
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


if __name__ == "__main__":
    main()
