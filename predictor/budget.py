"""Tokenizing a text of any length for no more tokens than a request can use.

A text of 100,000 one-token characters is 100,000 token ids (and a Rust ``Encoding``
of several times that) if it is tokenized whole, although ``head`` keeps the first
510 and ``chunks`` at most ``max_windows`` windows: eighty such texts once took a
2 GiB predictor pod down (issue 26). Here a long text is tokenized a prefix (or a
suffix) at a time, growing fourfold, until it holds the tokens asked for, so the work
and the memory of one text are bounded by a few times the tokens it needs, never by
its length.

Exactness: a prefix's tokens equal the whole text's for every word that ends before
the cut (pre-tokenizers split on whitespace and punctuation, and normalizers work per
character), so the tokens of the prefix's last word, which the cut may have changed,
are never used; a suffix likewise drops its first word. tests/unit/predictor/test_budget.py
compares the answers with whole-text tokenization.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Encoding, Tokenizer

FIRST_CUT_CHARS_PER_TOKEN = 8  # English runs ~4.5 characters a token: one step for almost every text
GROWTH = 4
MIN_CUT_CHARS = 1024


def _kept_prefix(encoding: Encoding) -> int:
    """Tokens of a prefix's encoding before its last word (the cut may have changed that word)."""
    words = encoding.word_ids
    last = words[-1] if words else None
    kept = len(words)
    while kept and words[kept - 1] == last:
        kept -= 1
    return kept


def _dropped_suffix(encoding: Encoding) -> int:
    """Tokens of a suffix's encoding in its first word (the cut may have changed that word)."""
    words = encoding.word_ids
    first = words[0] if words else None
    dropped = 0
    while dropped < len(words) and words[dropped] == first:
        dropped += 1
    return dropped


class TokenBudget:
    """Content token ids (no special tokens) of texts, at most ``need`` of them from each end."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())  # an untruncated, unpadded copy
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    def _cut(self, need: int) -> int:
        return max(need * FIRST_CUT_CHARS_PER_TOKEN, MIN_CUT_CHARS)

    def heads(self, texts: Sequence[str], need: int) -> list[tuple[list[int], bool]]:
        """Per text: its first ``need`` content ids exactly, and whether it has more tokens than that."""
        cut = self._cut(need)
        short = [i for i, text in enumerate(texts) if len(text) <= cut]
        out: list[tuple[list[int], bool]] = [([], False)] * len(texts)
        # Short texts in one call (their work is bounded by ``cut`` characters each) ...
        for i, encoding in zip(short, self.tokenizer.encode_batch_fast([texts[i] for i in short],
                                                                       add_special_tokens=False)):
            ids = encoding.ids
            out[i] = (ids[:need], len(ids) > need)
        for i, text in enumerate(texts):  # ... long ones a prefix at a time
            if len(text) > cut:
                out[i] = self.head(text, need)
        return out

    def head(self, text: str, need: int) -> tuple[list[int], bool]:
        chars = self._cut(need)
        while chars < len(text):
            encoding = self.tokenizer.encode(text[:chars], add_special_tokens=False)
            if _kept_prefix(encoding) >= need:  # the first ``need`` lie in whole words: exact, and more follow
                return encoding.ids[:need], True
            chars *= GROWTH
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ids[:need], len(ids) > need

    def tail(self, text: str, need: int) -> list[int]:
        """The last ``need`` content ids of ``text`` exactly."""
        chars = self._cut(need)
        while chars < len(text):
            encoding = self.tokenizer.encode(text[len(text) - chars:], add_special_tokens=False)
            if len(encoding.ids) - _dropped_suffix(encoding) >= need:
                return encoding.ids[len(encoding.ids) - need:]
            chars *= GROWTH
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ids[max(len(ids) - need, 0):]
