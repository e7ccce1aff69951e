"""``python -m modelbuild.bake --out DIR``: a servable model directory for a container image.

Adapters are merged, packed models restored and the ONNX graphs (fused fp32 and int8)
exported here, at build time, so a pod that scales from zero loads ready files and
never merges or exports anything at start (predictor/Dockerfile runs this).

``python -m modelbuild.bake --in_place`` (run by ``make setup``) bakes the graphs of
every bundled model into ``predictor/bundled/<name>/onnx/`` (git-ignored), stamped with
the weights' revision, so the first ``make serve`` only loads files.

``python -m modelbuild.bake --pack TRAINED_DIR --out predictor/bundled/<name>`` writes a
trained model the way the bundled ones are committed (modelbuild/restore.py).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from modelbuild.export import export_onnx
from modelbuild.files import encoder_dir, resolve_model_dir
from modelbuild.layout import (
    BAKED_FROM,
    BUNDLED_DIR,
    FP16_WEIGHTS,
    MODEL_CARD,
    ONNX_DIR,
    ONNX_INT8,
    TOKENIZER,
    TRAINING_RECORD,
    bundled_models,
    weights_revision,
)
from modelbuild.restore import is_packed, pack


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


def bake_in_place(model_dir: Path) -> bool:
    """Export the graphs of a packed model next to it, once per revision of its weights; True if it did."""
    stamp, revision = model_dir / ONNX_DIR / BAKED_FROM, weights_revision(model_dir)
    if (model_dir / ONNX_DIR / ONNX_INT8).is_file() and stamp.is_file() and stamp.read_text().strip() == revision:
        return False
    shutil.rmtree(model_dir / ONNX_DIR, ignore_errors=True)
    with tempfile.TemporaryDirectory() as cache:
        export_onnx(resolve_model_dir(model_dir, model_dir.name, Path(cache)), model_dir / ONNX_DIR)
    stamp.write_text(revision + "\n")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m modelbuild.bake", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name", default="sentiment", help="bundled model to bake when --model_dir is not given")
    parser.add_argument("--model_dir", type=Path, default=None, help="a model or adapter directory to bake instead")
    parser.add_argument("--pack", type=Path, default=None, help="a trained model directory to pack into --out")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="write a whole servable model directory here")
    target.add_argument("--in_place", action="store_true", help="bake every bundled model's graphs next to it")
    args = parser.parse_args()
    if args.pack:
        weights = pack(args.pack, args.out, encoder_dir()) / FP16_WEIGHTS
        print(f"packed {args.pack} into {weights} ({weights.stat().st_size / 1e6:.1f} MB)")
        return
    if args.out:
        print(f"baked {bake(args.model_dir, args.model_name, args.out)}")
        return
    for name in bundled_models():
        if is_packed(BUNDLED_DIR / name):
            baked = bake_in_place(BUNDLED_DIR / name)
            print(f"bundled model {name}: ONNX graphs {'baked' if baked else 'already baked'} in "
                  f"{BUNDLED_DIR / name / ONNX_DIR}")


if __name__ == "__main__":
    main()
