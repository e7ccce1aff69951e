"""Shared fixtures: tiny DistilBERT models built from a config (random weights, the real uncased vocabulary)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.random_model import build_random_model

EMOTIONS = ("sadness", "joy", "love", "anger", "fear", "surprise")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_random_model(tmp_path_factory.mktemp("models") / "tiny-sentiment")


@pytest.fixture(scope="session")
def tiny_multilabel_dir(tmp_path_factory) -> Path:
    return build_random_model(tmp_path_factory.mktemp("models") / "tiny-emotion", labels=EMOTIONS, multi_label=True)


@pytest.fixture(scope="session")
def short_context_dir(tmp_path_factory) -> Path:
    """A model with only 16 positions: anything longer must be truncated, never crash."""
    return build_random_model(tmp_path_factory.mktemp("models") / "tiny-short", max_positions=16)
