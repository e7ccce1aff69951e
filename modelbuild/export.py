"""ONNX artifacts for the ONNX Runtime backends: export, fuse, quantize, once.

``model.onnx`` is the PyTorch graph exported and then fused by ONNX Runtime's
transformer optimizer (attention, layer norm and GELU become single kernels);
``model.int8.onnx`` is that graph with int8 weights (dynamic quantization:
activations are quantized on the fly, so no calibration data is needed), one scale
per output channel: on the bundled sentiment model's held-out sentences per-channel
weights agree with fp32 on 98.2% of answers against 97.0% per tensor, at the same
speed and size. One matmul stays fp32: the first layer's FFN output (the one fed by
the first GELU). Nearly all of int8's error is the activations' (weights rounded
to int8 alone move the logits by 0.03 RMS, dynamic int8 as a whole by 0.15), and of
the 26 quantized matmuls that one's input is the costliest to round to 8 bits per
tensor: keeping it alone in fp32 cuts the logit error to 0.13 and the answers that
differ from fp32 by 14%, for 3% of throughput (BENCHMARKS.md, "int8 error").
(Measured and not taken: static quantization, which ONNX Runtime cannot apply to
the fused attention op; keeping all six FFN input matmuls in fp32 (13% of
throughput) or all six FFN output ones (1.2-1.6x slower); SmoothQuant-style
per-channel scaling of the matmul inputs, which moved the logit error from 0.15 to
0.13 at best.)

Where they live (modelbuild/layout.py): ``<model_dir>/onnx/`` when baked there
(``python -m modelbuild.bake --out``, at image build time), otherwise in the cache,
written on first use (modelbuild/files.py). Only the export needs torch; serving
reads the files.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from modelbuild.layout import ONNX_FP32, ONNX_INT8

logger = logging.getLogger(__name__)

OPSET = 17


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


GELUS = {"Gelu", "BiasGelu", "FastGelu"}  # what ONNX Runtime's optimizer fuses the FFN activation into


def ffn_outputs(graph) -> list[str]:
    """Every encoder layer's FFN output matmul (the one a GELU feeds), in graph order, which is layer order."""
    gelus = {output for node in graph.node if node.op_type in GELUS for output in node.output}
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.input[0] in gelus]


def kept_in_fp32(graph) -> list[str]:
    """The matmul that int8 leaves in fp32: the first encoder layer's FFN output."""
    return ffn_outputs(graph)[:1]


def quantize(fp32: Path, out: Path, exclude: list[str]) -> None:
    """Dynamic int8, weights per output channel, every matmul but ``exclude``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Fused contrib ops carry no inferred output types; the tensors are float32.
    quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=exclude,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def export_onnx(model_dir: Path, out_dir: Path) -> Path:
    """Write model.onnx (fused fp32) and model.int8.onnx for a Hugging Face classifier into ``out_dir``."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    started = time.perf_counter()
    hf_logging.disable_progress_bar()  # a bake prints one line, not a "Loading weights" bar per model
    # Eager attention exports the plain matmul-softmax pattern that ONNX Runtime's optimizer fuses into one op.
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    sample = tokenizer(["a short one", "and a somewhat longer second sentence"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in sample and model.config.model_type != "distilbert":
        names.append("token_type_ids")
    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {"logits": {0: "batch"}}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    raw = staging / "raw.onnx"
    try:
        # The tracer's warnings (shape-dependent Python branches in transformers' mask code,
        # which are constant for an encoder) and the quantizer's per-tensor INFO lines on
        # the root logger (and its advice to pre-process) are noise here: the unit tests compare
        # every backend's answers.
        with torch.no_grad(), warnings.catch_warnings(), _quiet_root_logger():
            warnings.simplefilter("ignore")
            # The TorchScript exporter: dynamic batch and length axes, one self-contained file.
            torch.onnx.export(model, (), str(raw), kwargs={name: sample[name] for name in names}, input_names=names,
                              output_names=["logits"], dynamic_axes=axes, opset_version=OPSET, dynamo=False)
            fused = optimize_model(str(raw), model_type="bert", num_heads=model.config.num_attention_heads,
                                   hidden_size=model.config.hidden_size)
            fused.save_model_to_file(str(staging / ONNX_FP32))
            quantize(staging / ONNX_FP32, staging / ONNX_INT8, kept_in_fp32(fused.model.graph))
        raw.unlink()
        staging.chmod(0o755)  # mkdtemp makes it private; the serving user may differ from the builder
        staging.rename(out_dir)  # atomic, as for merged adapters: a concurrent start sees all or nothing
    except OSError:
        if not (out_dir / ONNX_INT8).is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after a rename; a half-written export otherwise
    logger.info("Exported %s to ONNX in %s (%.1f s)", model_dir, out_dir, time.perf_counter() - started)
    return out_dir
