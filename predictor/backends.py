"""Inference backends: logits from padded token ids, by PyTorch or by ONNX Runtime.

``--backend`` picks one. The ONNX backends import neither torch nor transformers,
which is most of what a serving process would otherwise spend seconds importing;
their graphs are exported, fused and quantized ahead of time (``modelbuild.export``),
at image build time or once into the cache, never per request. The default is the
fastest backend that keeps the bundled models within one accuracy point of PyTorch
fp32 (BENCHMARKS.md has the measurement; tests/integration/test_backends.py the proof).

``BACKENDS`` is a registry: each entry names the file it opens (an ONNX graph, or the
model directory for PyTorch) and how to open it. Finding or exporting that file is
``modelbuild.files``' job, done once before the classifier is built; nothing here
imports the exporter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from modelbuild.layout import ONNX_FP32, ONNX_INT8

logger = logging.getLogger(__name__)

# (input_ids, attention_mask), both int64 (batch, tokens) -> float32 logits (batch, labels)
Backend = Callable[[np.ndarray, np.ndarray], np.ndarray]


class OnnxBackend:
    def __init__(self, path: Path, threads: int):
        self.path, self.threads = path, threads
        self._open()

    def __getstate__(self) -> dict:  # KServe's --workers spawns processes: each opens its own session
        return {"path": self.path, "threads": self.threads}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()

    def _open(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads  # 0: ONNX Runtime's default, one per physical core
        options.inter_op_num_threads = 1  # one graph runs at a time (the batcher's single inference thread)
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle pool threads sleep instead of spinning: on a 2-core pod the event loop,
        # the tokenizer and the transformer next door need those cycles between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The exported graph is already fused offline; ENABLE_ALL here only adds the
        # CPU-specific layout passes, which cost little at start.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.inputs = {item.name for item in self.session.get_inputs()}

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.inputs:  # BERT-style encoders: one segment
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        return self.session.run(None, feeds)[0]


class TorchBackend:
    def __init__(self, model_dir: Path, threads: int, int8: bool = False):
        import torch
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a server's log gets lines, not a "Loading weights" bar
        if threads > 0:
            torch.set_num_threads(threads)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        if int8:  # weights of every Linear layer to int8, activations quantized on the fly
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch  # already loaded by __init__; a module attribute would not pickle for --workers

        with torch.inference_mode():
            out = self.model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask))
        return out.logits.float().numpy()


@dataclass(frozen=True)
class BackendKind:
    onnx_file: str | None  # the ONNX graph it runs (layout.ONNX_*); None: PyTorch reads the model directory
    open: Callable[[Path, int], Backend]  # (that file or directory, intra-op threads) -> the backend


BACKENDS: dict[str, BackendKind] = {
    "onnx-int8": BackendKind(ONNX_INT8, OnnxBackend),
    "onnx": BackendKind(ONNX_FP32, OnnxBackend),
    "torch": BackendKind(None, TorchBackend),
    "torch-int8": BackendKind(None, partial(TorchBackend, int8=True)),
}
DEFAULT_BACKEND = "onnx-int8"  # --backend's default (predictor/settings.py), and what make bench measures first


def load_backend(name: str, weights: Path, threads: int) -> Backend:
    """Open backend ``name`` on ``weights``: the file ``BACKENDS[name].onnx_file`` or the model directory."""
    return BACKENDS[name].open(weights, threads)
