"""How good a classifier's scores are: per-class figures, calibration, and the hard slices.

Numpy only, so the model cards, the evaluation CLI and the tests compute the same
figures the same way. The scores users threshold on are softmax probabilities; their
calibration is measured as the expected calibration error (ECE: the gap between
confidence and accuracy, averaged over equal-width confidence bins, weighted by the
rows in each) and improved by one temperature fitted on a held-out slice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from training.data import Example

ECE_BINS = 15
# Words that turn or qualify a sentence's polarity: "not bad", "great but dull".
NEGATION_OR_CONTRAST = re.compile(
    r"\b(not|no|never|nothing|none|neither|nor|without|hardly|barely|but|though|although|yet|however|despite|"
    r"instead|rather|except|unless|even)\b|n't\b")
LONG_WORDS = 25


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    shifted = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, labels: Sequence[int], bins: int = ECE_BINS) -> float:
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = predicted == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def negative_log_likelihood(logits: np.ndarray, labels: Sequence[int], temperature: float) -> float:
    probs = softmax(logits, temperature)
    return float(-np.log(np.clip(probs[np.arange(len(probs)), np.asarray(labels)], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, labels: Sequence[int]) -> float:
    """The temperature that minimises the NLL on (held-out) logits: a golden-section search over log T."""
    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if negative_log_likelihood(logits, labels, np.exp(a)) < negative_log_likelihood(logits, labels, np.exp(b)):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2))


def per_class(probs: np.ndarray, labels: Sequence[int], names: Sequence[str]) -> dict:
    """Accuracy, per-label precision/recall/F1/support, and the confusion matrix (rows: true, columns: predicted)."""
    truth, predicted = np.asarray(labels), probs.argmax(axis=1)
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    classes = {}
    for i, name in enumerate(names):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        classes[name] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                         "f1": round(float(f1), 4), "support": int(confusion[i].sum())}
    return {"rows": len(truth), "accuracy": round(float((truth == predicted).mean()), 4), "classes": classes,
            "macro_f1": round(float(np.mean([c["f1"] for c in classes.values()])), 4),
            "confusion": confusion.tolist()}


def report(logits: np.ndarray, labels: Sequence[int], names: Sequence[str], temperature: float = 1.0) -> dict:
    """Everything a model card says about one slice: per-class figures and ECE before/after the temperature."""
    out = per_class(softmax(logits), labels, names)
    out["ece"] = round(expected_calibration_error(softmax(logits), labels), 4)
    out["ece_with_temperature"] = round(expected_calibration_error(softmax(logits, temperature), labels), 4)
    return out


def hard_slices(examples: Sequence[Example]) -> dict[str, list[int]]:
    """Row indices of the harder sub-slices: long texts, negation/contrast, and both."""
    long = [i for i, e in enumerate(examples) if len(e.text.split()) >= LONG_WORDS]
    turned = [i for i, e in enumerate(examples) if NEGATION_OR_CONTRAST.search(e.text.lower())]
    both = sorted(set(long) & set(turned))
    return {f"{LONG_WORDS}+ words": long, "negation or contrast": turned,
            f"{LONG_WORDS}+ words with negation or contrast": both}
