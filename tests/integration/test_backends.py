"""The default backend keeps the bundled models within one accuracy point of PyTorch fp32.

The same held-out sentences (sentiment) and validation rows (emotion) that the model
cards report, classified by PyTorch fp32 and by every ONNX backend on the same merged
weights: quantization may cost accuracy, and this is where that cost is bounded.
"""

import functools

import pytest

from modelbuild.layout import BUNDLED_DIR
from predictor.backends import DEFAULT_BACKEND
from tests.conftest import SHARED
from training.evaluate import accuracy_of, holdout_slices, validation_slices

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (SHARED / "data").is_dir(), reason=f"{SHARED}/data is absent: the labelled data lives there"),
]


@functools.cache
def validation_set(name: str):
    """The model card's test slice: held-out whole sentences (sentiment), held-out validation rows (emotion)."""
    if name == "sentiment":
        return holdout_slices(BUNDLED_DIR / "sentiment", SHARED / "data/sst2/train.tsv")[1]
    return validation_slices(BUNDLED_DIR / "emotion", SHARED / "data/emotion/validation.csv")[1]


@pytest.fixture(scope="module")
def cache_dir(session_cache):
    """The session's: the adapters merged and exported here are the ones test_bundled_models serves."""
    from modelbuild.layout import default_cache_dir

    return default_cache_dir()


@pytest.fixture(scope="module")
def fp32_accuracy(cache_dir):
    measured = {}

    def of(name: str) -> float:
        if name not in measured:
            measured[name] = accuracy_of(BUNDLED_DIR / name, validation_set(name), cache_dir, backend="torch")
        return measured[name]

    return of


@pytest.mark.parametrize("name", ["sentiment", "emotion"])
@pytest.mark.parametrize("backend", sorted({DEFAULT_BACKEND, "onnx"}))
def test_backend_accuracy_is_within_one_point_of_fp32(name, backend, cache_dir, fp32_accuracy):
    examples = validation_set(name)
    fp32 = fp32_accuracy(name)
    measured = accuracy_of(BUNDLED_DIR / name, examples, cache_dir, backend=backend)
    print(f"{name}: torch fp32 {fp32:.4f}, {backend} {measured:.4f} on {len(examples)} rows")
    assert abs(measured - fp32) <= 0.01, (name, backend, fp32, measured)
