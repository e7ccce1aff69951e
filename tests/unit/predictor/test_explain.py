"""Occlusion plans and attributions on the bundled models' real tokenizer (no model, no server)."""

import numpy as np
import pytest
from tokenizers import Tokenizer

from modelbuild.layout import BUNDLED_DIR
from predictor.explain import _without, explanation, plan


@pytest.fixture(scope="module")
def tokenizer():
    tokenizer = Tokenizer.from_file(str(BUNDLED_DIR / "sentiment" / "tokenizer.json"))
    tokenizer.enable_truncation(512)
    return tokenizer


def test_each_variant_removes_exactly_one_words_tokens(tokenizer):
    text = "Hello, wonderful   world-wide stuff!"
    p = plan(tokenizer, text, "word", max_words=64)
    assert [u.text for u in p.units] == ["Hello,", "wonderful", "world-wide", "stuff!"]
    assert all(text[u.start : u.end] == u.text for u in p.units)
    assert p.rows[0] == tokenizer.encode(text).ids  # the explained input is what :predict tokenizes
    for unit, row in zip(p.units, p.rows[1:]):
        without = " ".join(w for w in text.split() if w != unit.text)
        assert row == tokenizer.encode(without).ids  # removing the word's tokens == deleting the word
    assert (p.words, p.explained_words, p.truncated) == (4, 4, False)


def test_tokens_on_request(tokenizer):
    text = "Unbelievably dull"
    p = plan(tokenizer, text, "token", 64)
    offsets = tokenizer.encode(text).offsets[1:-1]
    assert [(u.start, u.end) for u in p.units] == offsets and len(offsets) > 2  # one unit per token ...
    assert [u.text for u in p.units] == [text[s:e] for s, e in offsets]  # ... named by the characters it covers
    assert all(len(row) == len(p.rows[0]) - 1 for row in p.rows[1:])


def test_long_texts_are_explained_over_their_first_words(tokenizer):
    text = " ".join(f"w{i}" for i in range(100))
    p = plan(tokenizer, text, "word", max_words=10)
    assert len(p.units) == 10 and p.units[-1].text == "w9"
    assert (p.words, p.explained_words, p.truncated) == (100, 10, True)
    assert len(p.rows) == 11
    token_plan = plan(tokenizer, text, "token", max_words=5)
    assert len(token_plan.units) == 5 and token_plan.truncated


def test_empty_and_blank_texts_have_no_units(tokenizer):
    for text in ("", "   "):
        p = plan(tokenizer, text, "word", 64)
        assert p.units == [] and len(p.rows) == 1 and not p.truncated


def test_contribution_is_the_drop_of_the_predicted_labels_probability(tokenizer):
    p = plan(tokenizer, "not bad at all", "word", 64)
    probs = np.array([[0.2, 0.8], [0.1, 0.9], [0.7, 0.3], [0.25, 0.75], [0.2, 0.8]], np.float32)
    answer = explanation(p, probs, ["NEGATIVE", "POSITIVE"])
    assert answer["label"] == "POSITIVE" and answer["score"] == pytest.approx(0.8)
    contributions = [a["contribution"] for a in answer["attributions"]]
    np.testing.assert_allclose(contributions, [-0.1, 0.5, 0.05, 0.0], atol=1e-6)
    assert answer["method"] == "occlusion" and answer["granularity"] == "word"
    assert plan(tokenizer, "not bad at all", "word", 64).rows == p.rows  # deterministic


def test_a_row_without_a_unit_drops_exactly_its_positions():
    """_without's slicing (consecutive positions) and its general path agree with dropping one by one."""
    ids = list(range(100, 120))
    for positions in [(0,), (5,), (19,), (3, 4, 5), (17, 18, 19), (2, 5), (1, 2, 7)]:
        assert _without(ids, positions) == [t for i, t in enumerate(ids) if i not in positions], positions
