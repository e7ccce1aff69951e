"""Shared fixtures: hermetic caches, and tiny DistilBERT models built from a config (random weights, the real
uncased vocabulary)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.random_model import build_random_model

EMOTIONS = ("sadness", "joy", "love", "anger", "fear", "surprise")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Path:
    """Every cache of this session, ours (merged adapters, exported ONNX graphs) and the libraries', in one temp dir.

    Nothing is read from or written to the user's ~/.cache, and every server a test
    starts inherits the variables, so a model's ONNX graphs are exported once per
    session and shared by the unit tests and every predictor process.
    """
    cache = tmp_path_factory.mktemp("cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(cache))  # ours (modelbuild.layout.default_cache_dir), Hugging Face, torch
    patch.setenv("MPLCONFIGDIR", str(cache / "matplotlib"))  # the locust report's plot
    patch.delenv("MODEL_CACHE_DIR", raising=False)
    patch.delenv("HF_HOME", raising=False)
    yield cache
    patch.undo()


def exported_once(model_dir: Path) -> Path:
    """``model_dir`` with its ONNX graphs exported into the session cache now, in this process.

    Otherwise the first predictor process to serve it exports them while it starts, which on
    a loaded machine takes longer than a server may take to become ready; every later user
    (unit tests, every predictor) finds them in the cache.
    """
    from modelbuild.layout import default_cache_dir
    from predictor.files import resolve

    resolve(model_dir, model_dir.name, default_cache_dir(), "onnx-int8")  # writes both graphs (fp32, int8)
    return model_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, session_cache) -> Path:
    return exported_once(build_random_model(tmp_path_factory.mktemp("models") / "tiny-sentiment"))


@pytest.fixture(scope="session")
def tiny_multilabel_dir(tmp_path_factory, session_cache) -> Path:
    return exported_once(build_random_model(tmp_path_factory.mktemp("models") / "tiny-emotion", labels=EMOTIONS,
                                          multi_label=True))


@pytest.fixture(scope="session")
def short_context_dir(tmp_path_factory) -> Path:
    """A model with only 16 positions: anything longer must be truncated, never crash."""
    return build_random_model(tmp_path_factory.mktemp("models") / "tiny-short", max_positions=16)
