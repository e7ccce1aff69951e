"""``python -m bench.int8_error --model_dir DIR --holdout_of TRAIN``: where int8's error comes from.

Quantizes a baked model's fused fp32 graph (``DIR/onnx/model.onnx``) as
modelbuild.export does (dynamic, int8 weights per channel), once per variant that
keeps one kind of matmul in fp32, and compares each with fp32 on the same texts in
the same batches (activations are quantized per batch, so the batches must match):
the logits' RMS error, how many answers differ from fp32, and the accuracy on the
model's held-out rows (its training.json's slices). ``weights-only`` rounds the
weights to int8 and back and runs in fp32: the weights' share of the error.

    python -m bench.int8_error --model_dir predictor/bundled/sentiment \\
        --holdout_of ../shared/data/sst2/train.tsv --variants today,ffn-output-0,ffn-input

The texts: the held-out rows plus ``--extra`` training rows of 8+ words (seeded):
answers that differ from fp32 need no label, so more texts make that count steadier.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from modelbuild.export import GELUS, ffn_outputs, kept_in_fp32, quantize
from modelbuild.layout import ONNX_DIR, ONNX_FP32
from predictor.backends import OnnxBackend
from predictor.classifier import build_classifier
from predictor.settings import PredictorSettings
from training.data import read_labelled
from training.evaluate import add_slice_source, recorded_slices

MATMULS = ("MatMul", "Attention", "Gemm")


def kinds(graph) -> dict[str, list[str]]:
    """Node names of each kind of quantizable matmul, per layer where it has one (``ffn-output-0``...)."""
    feeds_gelu = {node.input[0] for node in graph.node if node.op_type in GELUS}
    outputs = ffn_outputs(graph)
    found: dict[str, list[str]] = {"qkv": [], "attention-output": [], "ffn-input": [], "ffn-output": outputs, "head": []}
    for node in graph.node:
        if node.op_type == "Attention":
            found["qkv"].append(node.name)
        elif node.op_type == "Gemm":
            found["head"].append(node.name)
        elif node.op_type == "MatMul" and node.name not in outputs:
            found["ffn-input" if node.output[0] in feeds_gelu else "attention-output"].append(node.name)
    for i, name in enumerate(found["ffn-output"]):
        found[f"ffn-output-{i}"] = [name]
    found["ffn"] = found["ffn-input"] + found["ffn-output"]
    return found


def weights_rounded(fp32: Path, out: Path) -> None:
    """fp32 graph whose matmul weights went through per-channel int8 and back."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(fp32))
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in MATMULS and node.input[1] in initializers:
            weight = numpy_helper.to_array(initializers[node.input[1]])
            axis = 1 if node.op_type == "Gemm" else 0  # a Gemm here holds its weight transposed
            scale = np.abs(weight).max(axis=axis, keepdims=True) / 127
            rounded = (np.round(weight / scale) * scale).astype(np.float32)
            initializers[node.input[1]].CopyFrom(numpy_helper.from_array(rounded, node.input[1]))
    onnx.save(model, str(out))


def main() -> None:
    import onnx

    parser = argparse.ArgumentParser(prog="python -m bench.int8_error", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", type=Path, required=True, help="a baked model directory")
    add_slice_source(parser)
    parser.add_argument("--extra", type=int, default=3000, help="unlabelled-use training rows added to the texts")
    parser.add_argument("--variants", default="today,export,weights-only,qkv,attention-output,ffn-input,ffn-output,"
                                               "ffn-output-0,ffn,head",
                        help="today (every matmul int8), export (modelbuild.export's choice), weights-only, or a "
                             "kind of matmul kept in fp32")
    args = parser.parse_args()
    fp32 = args.model_dir / ONNX_DIR / ONNX_FP32
    classifier = build_classifier(PredictorSettings(model_dir=args.model_dir, backend="onnx", threads=1), "m")
    calibration, test = recorded_slices(args)
    held_out = calibration + test
    texts = [row.text for row in held_out]
    if args.extra and args.holdout_of:
        long_rows = [row.text for row in read_labelled(args.holdout_of) if len(row.text.split()) >= 8]
        texts += random.Random(1).sample(long_rows, min(args.extra, len(long_rows)))
    truth = np.array([row.label for row in held_out])
    reference = classifier.logits(texts)
    graph = onnx.load(str(fp32), load_external_data=False).graph
    names = kinds(graph)
    results = {"model_dir": str(args.model_dir), "texts": len(texts), "held_out": len(held_out),
               "fp32_accuracy": round(float((reference[: len(held_out)].argmax(1) == truth).mean()), 4)}
    with tempfile.TemporaryDirectory() as scratch:
        for variant in args.variants.split(","):
            path = Path(scratch) / f"{variant}.onnx"
            exclude = [] if variant in ("today", "weights-only") else kept_in_fp32(graph) if variant == "export" \
                else names[variant]
            if variant == "weights-only":
                weights_rounded(fp32, path)
            else:
                quantize(fp32, path, exclude)
            classifier.backend = OnnxBackend(path, 1)
            started = time.perf_counter()
            logits = classifier.logits(texts)
            results[variant] = {
                "kept_fp32": len(exclude),
                "logit_rmse": round(float(np.sqrt(((logits - reference) ** 2).mean())), 4),
                "answers_differing": int((logits.argmax(1) != reference.argmax(1)).sum()),
                "held_out_accuracy": round(float((logits[: len(held_out)].argmax(1) == truth).mean()), 4),
                "seconds": round(time.perf_counter() - started, 1),  # one thread, not a benchmark: bench.ab is
            }
            print(variant, json.dumps(results[variant]), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
