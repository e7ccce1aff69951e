"""Occlusion explanations: how much each word (or token) of a text moves its predicted label.

The method, deterministic by construction (no sampling, no baseline to choose):

1. The explained input is the text's first ``max_words`` words (whitespace-separated
   spans; ``max_words`` tokens with ``granularity: token``), tokenized exactly as
   ``:predict`` tokenizes (head truncation at ``--max_length``). A longer text is
   explained over that prefix and the answer says so (``truncated``).
2. Row 0 is that input; row ``j`` is the same token ids with unit ``j``'s tokens
   removed (the text with that word deleted; special tokens are never removed).
3. All rows of one text go to the batcher as one group: one forward pass when they fit
   the token budget, batched with whatever else is queued.
4. ``label`` is the top label of row 0; a unit's ``contribution`` is
   ``p(label | input) - p(label | input without the unit)``: positive where the unit
   argues for the label, negative where it argues against it.

Cost: ``units + 1`` rows of about the text's length per text (BENCHMARKS.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
from tokenizers import Tokenizer

WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Unit:
    """One occluded piece of the text: its characters ``text[start:end]`` and its token positions."""

    text: str
    start: int
    end: int
    positions: tuple[int, ...]


@dataclass
class Plan:
    """One text's explanation rows: ``rows[0]`` the explained input, ``rows[j + 1]`` without ``units[j]``."""

    granularity: str
    units: list[Unit]
    rows: list[list[int]] = field(default_factory=list)
    words: int = 0  # words in the whole text
    explained_words: int = 0
    truncated: bool = False


def count_words(text: str, at_most: int) -> int:
    """The words an explanation of ``text`` covers, at most ``at_most``: without tokenizing."""
    return sum(1 for _ in islice(WORD.finditer(text), at_most))


def plan(tokenizer: Tokenizer, text: str, granularity: str, max_words: int) -> Plan:
    """The rows that explain ``text``; ``tokenizer`` truncates at ``--max_length`` like the classifier's."""
    spans = [m.span() for m in islice(WORD.finditer(text), max_words)]
    prefix = text[: spans[-1][1]] if spans else text
    encoding = tokenizer.encode(prefix)
    ids, offsets, special = encoding.ids, encoding.offsets, encoding.special_tokens_mask
    content = [i for i in range(len(ids)) if not special[i]]
    cut = granularity == "token" and len(content) > max_words
    if cut:  # the explained input is the first max_words tokens, as it is the first max_words words otherwise
        kept = [i for i in range(len(ids)) if special[i] or i <= content[max_words - 1]]
        ids, offsets = [ids[i] for i in kept], [offsets[i] for i in kept]
        content = [j for j, i in enumerate(kept) if not special[i]]
    if granularity == "token":
        # the characters a token covers ("watch" of "unwatchable", not the piece "##watch"): what the
        # transformer rebuilds from the request when the answer comes from its cache, which holds no text
        units = [Unit(text[offsets[i][0]:offsets[i][1]], *offsets[i], (i,)) for i in content]
    else:
        owner: dict[int, list[int]] = {}
        w = 0
        for i in content:  # tokens and words both run left to right
            while w < len(spans) and offsets[i][0] >= spans[w][1]:
                w += 1
            if w < len(spans):
                owner.setdefault(w, []).append(i)
        units = [Unit(text[spans[w][0] : spans[w][1]], *spans[w], tuple(owner[w])) for w in sorted(owner)]
    covered = max((u.end for u in units), default=0)
    words = len(text.split())
    explained_words = sum(1 for start, end in spans if end <= covered) if units else 0
    result = Plan(granularity, units, words=words, explained_words=explained_words,
                  truncated=explained_words < words or cut)
    result.rows = [list(ids)] + [_without(ids, u.positions) for u in units]
    return result


def _without(ids: Sequence[int], positions: tuple[int, ...]) -> list[int]:
    first, last = positions[0], positions[-1]
    if last - first + 1 == len(positions):  # a word's tokens are consecutive: two slices, at C speed (the
        return [*ids[:first], *ids[last + 1:]]  # rows of a storm of :explain were prepared under the GIL)
    drop = set(positions)
    return [token for i, token in enumerate(ids) if i not in drop]


def explanation(plan_: Plan, probs: np.ndarray, labels: Sequence[str]) -> dict:
    """The answer for one text from its rows' probabilities (``len(plan_.rows)`` rows, label order)."""
    best = int(np.argmax(probs[0]))
    score = float(probs[0, best])
    contributions = (score - probs[1:, best]).tolist()
    return {
        "label": labels[best],
        "score": score,
        "method": "occlusion",
        "granularity": plan_.granularity,
        "attributions": [
            {"text": u.text, "start": u.start, "end": u.end, "contribution": c}
            for u, c in zip(plan_.units, contributions)
        ],
        "words": plan_.words,
        "explained_words": plan_.explained_words,
        "truncated": plan_.truncated,
    }
