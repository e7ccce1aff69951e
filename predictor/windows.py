"""Texts longer than ``--max_length`` tokens: which tokens the model sees (``truncation``).

- ``head`` (the default, and what every anchor does): the first ``max_length`` tokens.
- ``head_tail``: the first quarter of the budget and the last three quarters. Sun et
  al. (2019, "How to Fine-Tune BERT for Text Classification?") found head 128 + tail
  382 of 510 tokens scored long IMDb reviews best: a review's verdict tends to come last.
- ``chunks``: windows of ``max_length`` tokens (special tokens included) that overlap
  by ``overlap`` tokens, each one model row scored in the same batches as every other
  row; the text's probabilities are the mean of its windows' weighted by the tokens of
  the text each holds (a short last window counts for less). At most ``max_windows``
  per text: beyond, the request is refused with ``too_many_windows`` (400) rather
  than costing an unbounded number of forward passes.

A text that fits in one row gives the same token ids under every strategy, so its
score does not depend on the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from contract.errors import ErrorType, ServiceError
from predictor.budget import TokenBudget

HEAD_SHARE = 0.25  # of the content budget kept from the head under head_tail (128 of 510, Sun et al. 2019)


@dataclass(frozen=True)
class Frame:
    """The special tokens a model's tokenizer puts around one sequence (BERT: [CLS] ... [SEP])."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    def wrap(self, content: Sequence[int]) -> list[int]:
        return [*self.prefix, *content, *self.suffix]


def special_frame(tokenizer: Tokenizer) -> Frame:
    """Read the frame off the tokenizer itself, so BERT, RoBERTa and friends all work unchanged."""
    probe = "hello"
    content = tokenizer.encode(probe, add_special_tokens=False).ids
    full = tokenizer.encode(probe).ids
    for start in range(len(full) - len(content) + 1):
        if full[start : start + len(content)] == content:
            return Frame(tuple(full[:start]), tuple(full[start + len(content) :]))
    raise ValueError("the tokenizer's post-processor does not keep the content contiguous")


def window_spans(n_tokens: int, width: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of each window over ``n_tokens`` content tokens; one window when they fit."""
    stride = max(width - overlap, 1)
    spans, start = [], 0
    while True:
        spans.append((start, min(start + width, n_tokens)))
        if start + width >= n_tokens:
            return spans
        start += stride


def windows_needed(n_tokens: int, width: int, overlap: int) -> int:
    stride = max(width - overlap, 1)
    return 1 if n_tokens <= width else 1 + -(-(n_tokens - width) // stride)


def head_tail(content: Sequence[int], width: int) -> list[int]:
    if len(content) <= width:
        return list(content)
    head = int(width * HEAD_SHARE)
    return [*content[:head], *content[len(content) - (width - head) :]]


@dataclass(frozen=True)
class Rows:
    """The model rows of a request's texts: text i owns ``rows[starts[i]:starts[i + 1]]``."""

    rows: list[list[int]]
    starts: list[int]  # len(texts) + 1 offsets
    weights: np.ndarray  # per row: the text's tokens it holds

    @property
    def windows(self) -> list[int]:
        return [end - start for start, end in zip(self.starts, self.starts[1:])]

    @property
    def groups(self) -> list[int]:
        """Row offsets where a text's rows end: the batcher keeps one text's windows together."""
        return self.starts[1:]


class Windowing:
    """Turns texts into model rows under one truncation strategy; runs off the event loop for long texts."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, overlap: int, max_windows: int):
        self.budget = TokenBudget(tokenizer)  # an untruncated copy that tokenizes only what a strategy keeps
        self.tokenizer = self.budget.tokenizer
        self.frame = special_frame(self.tokenizer)
        self.width = max_length - len(self.frame.prefix) - len(self.frame.suffix)  # content tokens per row
        if self.width < 2:
            raise ValueError(f"max_length {max_length} leaves no room for text between the special tokens")
        self.overlap = min(max(overlap, 0), self.width // 2)  # a stride of at least half a window
        self.max_windows = max_windows

    def max_tokens(self) -> int:
        """Content tokens of a text that fills ``max_windows`` windows: one more is ``too_many_windows``."""
        stride = max(self.width - self.overlap, 1)
        return self.width + (self.max_windows - 1) * stride

    def contents(self, texts: Sequence[str], strategy: str, field_name: str = "instances") -> list[list[int]]:
        """The content ids each text's rows are cut from: only what ``strategy`` keeps is tokenized."""
        if strategy == "chunks":
            limit = self.max_tokens()
            contents = []
            for i, (ids, more) in enumerate(self.budget.heads(texts, limit)):
                if more:
                    raise ServiceError(
                        ErrorType.TOO_MANY_WINDOWS,
                        f"{field_name}[{i}] has more than {limit} tokens: more than {self.max_windows} windows of "
                        f"{self.width} with an overlap of {self.overlap} (--max_windows). Send fewer tokens, or "
                        "truncation head or head_tail.",
                    )
                contents.append(ids)
            return contents
        heads = self.budget.heads(texts, self.width)
        if strategy != "head_tail":
            return [ids for ids, _ in heads]
        head = int(self.width * HEAD_SHARE)
        return [[*ids[:head], *self.budget.tail(text, self.width - head)] if more else ids
                for text, (ids, more) in zip(texts, heads)]

    def rows(self, texts: Sequence[str], strategy: str, field_name: str = "instances",
             max_rows: int | None = None) -> Rows:
        """The rows of ``texts``; ``request_too_large`` as soon as they pass ``max_rows`` (a per-request budget)."""
        rows, starts, weights = [], [0], []
        for content in self.contents(texts, strategy, field_name):
            if strategy == "chunks":
                for start, end in window_spans(len(content), self.width, self.overlap):
                    rows.append(self.frame.wrap(content[start:end]))
                    weights.append(max(end - start, 1))
            else:
                rows.append(self.frame.wrap(content))
                weights.append(max(len(content), 1))
            starts.append(len(rows))
            if max_rows is not None and len(rows) > max_rows:
                raise ServiceError(
                    ErrorType.REQUEST_TOO_LARGE,
                    f"The request needs more than {max_rows} model rows ({strategy} windows); the limit is "
                    f"{max_rows} per request (--max_request_rows). Send fewer or shorter texts per request.",
                )
        return Rows(rows, starts, np.asarray(weights, dtype=np.float32))


def combine(probs: np.ndarray, rows: Rows) -> np.ndarray:
    """Each text's probabilities: the token-weighted mean over its rows (a single row is itself)."""
    weighted = probs * rows.weights[:, None]
    sums = np.add.reduceat(weighted, rows.starts[:-1], axis=0) if len(rows.rows) else weighted[:0]
    totals = np.add.reduceat(rows.weights, rows.starts[:-1]) if len(rows.rows) else rows.weights[:0]
    return (sums / totals[:, None]).astype(np.float32)
