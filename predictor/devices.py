"""Where the model runs: ``--backend auto`` resolved, a GPU checked for before anything loads, batch sizes per backend.

Checked at start-up, before the model files are resolved: a pod that asked for
``torch-cuda`` on a node without a GPU (a missing ``nvidia.com/gpu`` limit, a CPU
image, a broken driver) exits with one line saying so, instead of a CUDA traceback
from the first forward pass. ``auto`` is the chart's GPU profile's choice: the GPU
where one is visible, else the CPU default, and the log line and the model's
metadata (``backend``, ``device``) say which it got.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass

from predictor.backends import AUTO, AUTO_CPU, BACKENDS
from predictor.files import NotServable

logger = logging.getLogger(__name__)


class DeviceError(NotServable):
    """The backend asked for cannot run on this machine (no GPU, or a dtype it cannot take)."""


@dataclass(frozen=True)
class Gpu:
    """What torch sees: the first CUDA device's name, or why there is none."""

    name: str | None
    why_not: str = ""


def visible_gpu() -> Gpu:
    """The GPU torch would run on. No torch (the slim image) is answered without importing anything."""
    if importlib.util.find_spec("torch") is None:
        return Gpu(None, "torch is not installed in this image (the GPU image has it: make image-gpu)")
    import torch

    if torch.version.cuda is None:
        return Gpu(None, f"torch {torch.__version__} is a CPU-only build")
    if not torch.cuda.is_available():  # no driver, no device, or CUDA_VISIBLE_DEVICES hides them
        return Gpu(None, f"torch {torch.__version__} sees no CUDA device (is nvidia.com/gpu in the pod's limits, "
                         "and the NVIDIA device plugin on the node?)")
    return Gpu(torch.cuda.get_device_name(0))


@dataclass(frozen=True)
class Choice:
    backend: str  # a key of BACKENDS, never "auto"
    device: str  # "cpu", or the GPU's name
    reason: str  # for the start-up log line


def choose_backend(requested: str, torch_dtype: str = "auto", gpu: Callable[[], Gpu] = visible_gpu) -> Choice:
    """The backend to load for ``--backend requested``; DeviceError when this machine cannot run it."""
    if requested == AUTO:
        found = gpu()
        if found.name is not None:
            choice = Choice("torch-cuda", found.name, f"--backend auto: GPU {found.name} is visible")
        else:
            choice = Choice(AUTO_CPU, "cpu", f"--backend auto: no GPU ({found.why_not}), so {AUTO_CPU} on the CPU")
    elif BACKENDS[requested].device == "cuda":
        found = gpu()
        if found.name is None:
            raise DeviceError(f"--backend {requested} needs a CUDA GPU and none is visible: {found.why_not}. "
                              f"Use --backend auto to fall back to {AUTO_CPU}, or a CPU backend.")
        choice = Choice(requested, found.name, f"--backend {requested} on GPU {found.name}")
    else:
        choice = Choice(requested, "cpu", f"--backend {requested}")
    if torch_dtype != "auto":
        kind = BACKENDS[choice.backend]
        if kind.onnx_file is not None:
            raise DeviceError(f"--torch_dtype {torch_dtype} applies to the PyTorch backends; {choice.backend} runs "
                              "an ONNX graph with its own weight types. Leave --torch_dtype auto.")
        if choice.backend == "torch-int8" and torch_dtype != "float32":
            raise DeviceError("--backend torch-int8 quantizes fp32 weights: --torch_dtype must be auto or float32.")
    return choice


@dataclass(frozen=True)
class BatchLimits:
    max_batch_size: int  # texts one model call takes from the queue
    max_batch_tokens: int  # padded tokens per forward pass


def batch_limits(backend: str, max_batch_size: int | None, max_batch_tokens: int | None) -> BatchLimits:
    """The settings where given, else the backend's defaults (a GPU wants hundreds of texts per pass, a CPU tens)."""
    kind = BACKENDS[backend]
    return BatchLimits(max_batch_size or kind.max_batch_size, max_batch_tokens or kind.max_batch_tokens)
