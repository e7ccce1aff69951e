"""The model directory layout: file names, the cache directory and its one naming rule, the content hash.

Every other predictor module that touches model files asks here, so a name is
spelled once. This module imports nothing else of ours (tests/unit/test_imports.py):
whatever needs a file name can import it without pulling in an exporter, a trainer
or a backend.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "predictor" / "bundled"  # the adapters shipped with the predictor
CONFIG = "config.json"  # a Hugging Face model directory has one
ADAPTER_CONFIG = "adapter_config.json"  # a LoRA adapter directory has one (merged at load time)
TOKENIZER = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
TRAINING_RECORD = "training.json"  # written by training.train: labels, base model, held-out slice
MODEL_CARD = "README.md"
ONNX_DIR = "onnx"  # <model_dir>/onnx/: graphs baked at image build time (python -m modelbuild.bake)
ONNX_FP32, ONNX_INT8 = "model.onnx", "model.int8.onnx"
BAKED_FROM = "REVISION"  # in onnx/ when baked in place: the weights_revision the graphs were made from
FP16_WEIGHTS = "weights.fp16.safetensors"  # a packed model (the bundled ones): see modelbuild/restore.py

# What the cache holds, per model: an adapter merged into its base, a packed model restored to
# fp32, and the exported ONNX graphs.
MERGED, RESTORED, ONNX = "merged", "restored", "onnx"


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kserve-text-classifier"


def cached(cache_dir: Path, kind: str, model_dir: Path) -> Path:
    """Where the cache keeps ``kind`` (MERGED or ONNX) of ``model_dir``: named by its content, never stale."""
    return Path(cache_dir) / f"{kind}-{Path(model_dir).name}-{model_revision(model_dir)}"


def _digest(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def model_revision(model_dir: Path) -> str:
    """A short content hash of a model directory's files: it changes when the model does.

    The predictor reports it as the model version (cache keys use it) and the cache
    names its entries by it.
    """
    return _digest(p for p in Path(model_dir).iterdir() if p.is_file() and not p.name.startswith("."))


def weights_revision(model_dir: Path) -> str:
    """A short content hash of a model directory's weight files only: what its ONNX graphs are made from.

    config.json may change without the graphs going stale (the fitted temperature lives there).
    """
    return _digest(Path(model_dir).glob("*.safetensors"))


def bundled_models() -> list[str]:
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / ADAPTER_CONFIG).is_file() or (p / CONFIG).is_file())
