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
import threading
from collections import deque
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
        options.inter_op_num_threads = 1  # one graph at a time per session (each inference thread has its own)
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
    """A transformers model on a torch device: ``cpu`` (fp32, or int8 weights) or ``cuda`` (bf16/fp16).

    One class for both, so that the code a GPU runs is the code the CPU-only test suite
    runs (``--backend torch --torch_dtype bfloat16`` is the GPU's numerics on a CPU).
    Attention is PyTorch's scaled_dot_product_attention (flash/memory-efficient kernels on
    a GPU) wherever the architecture supports it.
    """

    def __init__(self, model_dir: Path, threads: int, int8: bool = False, device: str = "cpu",
                 dtype: str = "auto"):
        import torch

        self._args = (model_dir, threads, int8, device, dtype)
        if threads > 0:
            torch.set_num_threads(threads)
        elif device != "cpu":  # on a GPU the host threads only launch kernels: leave the cores to the tokenizer
            torch.set_num_threads(1)  # and to the other --workers processes
        self.device = torch.device(device)
        self.dtype = _torch_dtype(dtype, device)
        model = _load_model(model_dir, self.dtype).eval()
        if int8:  # weights of every Linear layer to int8, activations quantized on the fly
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model.to(self.device)
        logger.info("torch backend: %s on %s (%s)", type(model).__name__, self.device, str(self.dtype).split(".")[-1])

    def __getstate__(self) -> dict:  # --workers: each spawned process loads its own copy (onto its own CUDA context)
        return {"_args": self._args}

    def __setstate__(self, state: dict) -> None:
        self.__init__(*state["_args"])

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch  # already loaded by __init__; a module attribute would not pickle for --workers

        with torch.inference_mode():
            # Host to device: a few KB of ids per batch; non_blocking lets the copy overlap the launch.
            ids = torch.from_numpy(input_ids).to(self.device, non_blocking=True)
            mask = torch.from_numpy(attention_mask).to(self.device, non_blocking=True)
            out = self.model(input_ids=ids, attention_mask=mask)
            return out.logits.float().cpu().numpy()  # .cpu() waits for the GPU: the batch is done when we return


TORCH_DTYPES = ("auto", "float32", "bfloat16", "float16")  # --torch_dtype's choices


def _torch_dtype(name: str, device: str):
    """``auto``: fp32 on a CPU (AVX2 has no fast bf16); bf16 on a GPU that has it (Ampere on), else fp16."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device == "cpu":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _load_model(model_dir: Path, dtype):
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a server's log gets lines, not a "Loading weights" bar
    try:
        return AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa")
    except (ValueError, ImportError) as exc:  # an architecture without an SDPA path: its own attention
        logger.info("%s: no SDPA attention (%s); using the model's own", model_dir, exc)
        return AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype)


@dataclass(frozen=True)
class BackendKind:
    onnx_file: str | None  # the ONNX graph it runs (layout.ONNX_*); None: PyTorch reads the model directory
    open: Callable[[Path, int], Backend]  # (that file or directory, intra-op threads) -> the backend
    device: str = "cpu"  # "cuda": needs a visible GPU (predictor/devices.py checks before anything loads)
    # The batcher's defaults when --max_batch_size / --max_batch_tokens are not set. A CPU pass
    # costs about its padded tokens, so tens of texts per pass already amortise the call; a GPU
    # pass costs about the same from 1 to a few hundred texts (kernel launches, not FLOPs),
    # so it wants hundreds of texts per pass (predictor/devices.py, bench/gpu.py measures it).
    max_batch_size: int = 32
    max_batch_tokens: int = 16384


BACKENDS: dict[str, BackendKind] = {
    "onnx-int8": BackendKind(ONNX_INT8, OnnxBackend),
    "onnx": BackendKind(ONNX_FP32, OnnxBackend),
    "torch": BackendKind(None, TorchBackend),
    "torch-int8": BackendKind(None, partial(TorchBackend, int8=True)),
    "torch-cuda": BackendKind(None, partial(TorchBackend, device="cuda"), device="cuda",
                              max_batch_size=256, max_batch_tokens=65536),
}
DEFAULT_BACKEND = "onnx-int8"  # --backend's default (predictor/settings.py), and what make bench measures first
AUTO = "auto"  # --backend auto: torch-cuda where a GPU is visible, else AUTO_CPU (predictor/devices.py)
AUTO_CPU = "onnx-int8"
CPU_BACKENDS = [name for name, kind in BACKENDS.items() if kind.device == "cpu"]  # what runs on any machine


class SessionPool:
    """Several copies of one backend, so that several inference threads can run batches at once.

    A call takes whichever copy is free and gives it back after: the batcher never runs more
    calls at once than there are copies (``--inference_sessions``), so one is always free.
    Copies are taken in turn (first in, first out), so as many calls in a row as there are
    copies touch each one once: that is how the warm-up reaches every session.
    """

    def __init__(self, backends: list[Backend]):
        self.backends = backends
        self._free = deque(backends)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.backends)

    def __getstate__(self) -> dict:  # --workers: each process opens its own copies (their own __setstate__)
        return {"backends": self.backends}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["backends"])

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with self._lock:
            backend = self._free.popleft()
        try:
            return backend(input_ids, attention_mask)
        finally:
            with self._lock:
                self._free.append(backend)


def load_backend(name: str, weights: Path, threads: int, dtype: str = "auto", sessions: int = 1) -> Backend:
    """Open backend ``name`` on ``weights``: the file ``BACKENDS[name].onnx_file`` or the model directory.

    ``dtype`` (--torch_dtype) applies to the PyTorch backends only; the ONNX graphs carry their own.
    ``sessions`` > 1 opens that many copies behind a SessionPool, each with ``threads`` intra-op threads.
    """
    kind = BACKENDS[name]
    if sessions > 1:
        return SessionPool([load_backend(name, weights, threads, dtype) for _ in range(sessions)])
    if kind.onnx_file is None and dtype != "auto":
        return kind.open(weights, threads, dtype=dtype)
    return kind.open(weights, threads)
