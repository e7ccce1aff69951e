"""A model's files, resolved once before the classifier is built: the directory to load and what the backend opens.

A baked model (``python -m modelbuild.bake``: what the images serve) is read as it is.
Anything else -- a LoRA adapter, a packed bundled model, a model without its ONNX graph --
goes through ``modelbuild.files`` once at start-up, into the cache. That is the one place
serving reaches into model building: ``make serve`` on a fresh clone and a ``storageUri``
holding an unbaked model both need it, and every heavy import there (torch, transformers,
peft) happens inside the function that needs it, so the torch-free image only refuses
(``NotServable``) instead of failing to import.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from modelbuild.files import NotServable, baked_graph, onnx_graph, require_torch, resolve_model_dir, source_dir
from modelbuild.layout import model_revision
from modelbuild.restore import is_packed
from predictor.backends import BACKENDS

__all__ = ["ModelFiles", "NotServable", "resolve"]  # NotServable: what predictor.__main__ catches


@dataclass(frozen=True)
class ModelFiles:
    """What one served model reads from disk."""

    model_dir: Path  # a Hugging Face model directory, adapters already merged
    backend: str  # a key of backends.BACKENDS
    weights: Path  # what that backend opens: its ONNX graph, or model_dir for PyTorch

    @cached_property
    def revision(self) -> str:
        """The content hash of ``model_dir``: the model version unless ``--model_version`` names one."""
        return model_revision(self.model_dir)


def resolve(model_dir: Path | None, model_name: str, cache_dir: Path, backend: str) -> ModelFiles:
    """The files to serve ``model_dir`` (or the bundled ``model_name``) with ``backend``; merges/exports once."""
    onnx_file = BACKENDS[backend].onnx_file
    source = source_dir(model_dir, model_name)
    if onnx_file is not None and is_packed(source) and (graph := baked_graph(source, onnx_file)):
        # A bundled model baked in place by `make setup`: config, tokenizer and graph are all here.
        return ModelFiles(model_dir=source, backend=backend, weights=graph)
    directory = resolve_model_dir(model_dir, model_name, cache_dir)
    if onnx_file is None:
        require_torch(directory, f"is to be served with --backend {backend}")
    weights = directory if onnx_file is None else onnx_graph(directory, onnx_file, cache_dir)
    return ModelFiles(model_dir=directory, backend=backend, weights=weights)


