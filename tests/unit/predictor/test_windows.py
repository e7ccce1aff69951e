"""Truncation strategies on the bundled models' real tokenizer (no model, no server)."""

import numpy as np
import pytest
from tokenizers import Tokenizer

from contract.errors import ServiceError
from modelbuild.layout import BUNDLED_DIR
from predictor.windows import Rows, Windowing, combine, head_tail, window_spans, windows_needed


@pytest.fixture(scope="module")
def tokenizer():
    tokenizer = Tokenizer.from_file(str(BUNDLED_DIR / "sentiment" / "tokenizer.json"))
    tokenizer.enable_truncation(32)  # as the classifier's: Windowing must not inherit it
    return tokenizer


@pytest.mark.parametrize("n_tokens", [0, 1, 29, 30, 31, 50, 200, 1001])
@pytest.mark.parametrize("width, overlap", [(30, 0), (30, 10), (30, 15), (8, 3)])
def test_windows_cover_every_token_and_overlap_as_told(n_tokens, width, overlap):
    spans = window_spans(n_tokens, width, overlap)
    assert len(spans) == windows_needed(n_tokens, width, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n_tokens
    assert all(end - start <= width for start, end in spans)
    for (s1, e1), (s2, _) in zip(spans, spans[1:]):
        assert s2 == s1 + width - overlap and e1 - s2 == overlap  # consecutive windows share exactly `overlap`


def test_head_tail_keeps_the_first_quarter_and_the_last_three_quarters():
    content = list(range(100))
    kept = head_tail(content, 20)
    assert kept == list(range(5)) + list(range(85, 100))
    assert head_tail(content[:20], 20) == content[:20]  # a text that fits is untouched


def test_a_text_that_fits_gets_the_classifiers_ids_under_every_strategy(tokenizer):
    windowing = Windowing(tokenizer, max_length=32, overlap=8, max_windows=8)
    text = "a gorgeous , witty , seductive movie ."
    for strategy in ("head", "head_tail", "chunks"):
        rows = windowing.rows([text], strategy)
        assert rows.rows == [tokenizer.encode(text).ids] and rows.windows == [1]


def test_long_texts_become_bounded_rows(tokenizer):
    windowing = Windowing(tokenizer, max_length=32, overlap=8, max_windows=10)
    long_text = " ".join(f"word{i}" for i in range(60))  # well over 30 content tokens
    content = windowing.tokenizer.encode(long_text, add_special_tokens=False).ids  # the fixture's truncates
    assert len(content) > 3 * windowing.width
    head, tail = windowing.rows([long_text], "head"), windowing.rows([long_text], "head_tail")
    assert head.rows == [tokenizer.encode(long_text).ids]  # head is exactly what the classifier's truncation gives
    keep_head = windowing.width // 4
    assert tail.rows[0] == [101, *content[:keep_head], *content[-(windowing.width - keep_head) :], 102]
    chunks = windowing.rows(["short", long_text], "chunks")
    assert chunks.windows[0] == 1 and chunks.windows[1] == windows_needed(len(content), windowing.width, 8)
    assert all(len(row) <= 32 and row[0] == 101 and row[-1] == 102 for row in chunks.rows)
    assert chunks.groups == [1, 1 + chunks.windows[1]]


def test_more_windows_than_allowed_is_refused(tokenizer):
    windowing = Windowing(tokenizer, max_length=32, overlap=8, max_windows=2)
    with pytest.raises(ServiceError) as caught:
        windowing.rows(["fine", "word " * 200], "chunks")
    assert caught.value.error_type == "too_many_windows" and caught.value.http_status == 400
    assert "instances[1]" in caught.value.message


def test_windows_combine_by_token_weighted_mean():
    rows = Rows(rows=[[1], [1], [1], [1]], starts=[0, 1, 4], weights=np.array([5, 30, 30, 10], np.float32))
    probs = np.array([[0.1, 0.9], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], np.float32)
    combined = combine(probs, rows)
    np.testing.assert_allclose(combined[0], [0.1, 0.9])
    np.testing.assert_allclose(combined[1], [(30 * 1.0 + 0 + 5) / 70, (0 + 30 + 5) / 70], rtol=1e-6)
