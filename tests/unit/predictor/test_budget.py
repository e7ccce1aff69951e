"""Bounded tokenization gives the whole-text tokenizer's ids, and tokenizes only what it needs."""

import random

import pytest
from tokenizers import Tokenizer

from modelbuild.layout import BUNDLED_DIR
from predictor import budget
from predictor.budget import TokenBudget

PIECES = ["word", "gorgeous", ",", "witty", "!!", "  ", "\n", "héllo", "naïve", "日本語", "x" * 150, "don't", "🙂",
          "ﷺ", "e\u0301", "\t", "(a)", "1234567"]


@pytest.fixture(scope="module", params=["sentiment", "emotion"])
def whole(request):
    tokenizer = Tokenizer.from_file(str(BUNDLED_DIR / request.param / "tokenizer.json"))
    tokenizer.no_truncation()
    return tokenizer


def random_text(rng: random.Random, words: int) -> str:
    return "".join(rng.choice(PIECES) + rng.choice(["", " ", " ", ".", "  "]) for _ in range(words))


@pytest.mark.parametrize("seed", range(6))
def test_heads_and_tails_equal_whole_text_tokenization(whole, seed, monkeypatch):
    monkeypatch.setattr(budget, "MIN_CUT_CHARS", 16)  # small cuts: many steps, many cut words
    rng = random.Random(seed)
    texts = [random_text(rng, rng.choice([0, 3, 40, 400, 3000])) for _ in range(12)]
    bounded = TokenBudget(whole)
    for need in (1, 7, 30, 510):
        for text, (ids, more) in zip(texts, bounded.heads(texts, need)):
            full = whole.encode(text, add_special_tokens=False).ids
            assert ids == full[:need] and more == (len(full) > need)
            if more:
                assert bounded.tail(text, need) == full[-need:]


def test_a_long_text_is_tokenized_only_as_far_as_needed(whole):
    tokenized = []
    bounded = TokenBudget(whole)
    encode = bounded.tokenizer.encode
    bounded.tokenizer = type("Spy", (), {"encode": lambda self, text, **kw: tokenized.append(len(text)) or
                                         encode(text, **kw)})()
    text = "! " * 500_000  # a million characters, 500,000 tokens
    ids, more = bounded.head(text, 510)
    assert more and len(ids) == 510
    assert sum(tokenized) <= 510 * budget.FIRST_CUT_CHARS_PER_TOKEN  # one cut of 4,080 characters did it
