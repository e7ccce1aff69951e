"""What scoring texts tells, as both services hand it to the model face (runtime/face.py): data only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Scores:
    """What scoring texts tells: one row of probabilities per text, and who computed them."""

    probs: np.ndarray  # (n, k) float32, columns in ``labels`` order
    labels: list[str]
    model_version: str  # the version to answer with (and, in the transformer, to cache under)
    windows: list[int] | None = None  # truncation chunks: windows per text
    explanations: list[dict | bytes] | None = None  # explain: one per text (bytes: its JSON, as cached)
    # What scoring measured, sent as response headers (x-cache, the timings of contract/timings.py).
    measured: dict[str, str] = field(default_factory=dict)
