"""``python -m predictor.bake --out DIR``: a servable model directory for a container image.

Adapters are merged and the ONNX graphs (fused fp32 and int8) exported here, at
build time, so a pod that scales from zero loads ready files and never merges or
exports anything at start (predictor/Dockerfile runs this).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from predictor.export import export_onnx
from predictor.files import resolve_model_dir
from predictor.layout import BUNDLED_DIR, MODEL_CARD, ONNX_DIR, TOKENIZER, TRAINING_RECORD


def bake(model_dir: Path | None, model_name: str, out_dir: Path) -> Path:
    """Write a servable model directory to ``out_dir``; the ONNX graphs go to ``out_dir/onnx``, looked at first."""
    with tempfile.TemporaryDirectory() as cache:
        source = resolve_model_dir(model_dir, model_name, Path(cache))
        shutil.copytree(source, out_dir, dirs_exist_ok=True)
    if not (out_dir / TOKENIZER).is_file():  # models saved with a slow tokenizer only: serve the fast one
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(out_dir, use_fast=True).save_pretrained(out_dir)
    if not (out_dir / ONNX_DIR).is_dir():
        export_onnx(out_dir, out_dir / ONNX_DIR)
    for record in (TRAINING_RECORD, MODEL_CARD):  # keep the model card with the weights
        origin = (Path(model_dir) if model_dir else BUNDLED_DIR / model_name) / record
        if origin.is_file():
            shutil.copy2(origin, out_dir / record)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m predictor.bake", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name", default="sentiment", help="bundled model to bake when --model_dir is not given")
    parser.add_argument("--model_dir", type=Path, default=None, help="a model or adapter directory to bake instead")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(f"baked {bake(args.model_dir, args.model_name, args.out)}")


if __name__ == "__main__":
    main()
