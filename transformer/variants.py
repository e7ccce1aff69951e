"""What a transformer request asks the predictor for, and how each text's answer is cached.

A plain prediction under ``truncation: head`` keeps the cache entries it always had
(the probabilities as float32 bytes, under the untagged key). The others are cached
apart, under a tag in the key, because they are different answers for the same text:

- ``head_tail``: the probabilities, key tag ``thead_tail``
- ``chunks``: the probabilities and the window count (int32), key tag ``tchunks``
- an explanation: the probabilities and the explanation's JSON without the words
  (each attribution's ``text``), key tag ``eword``/``etoken``; the words are put back
  from the request's own text (``with_words``) on every answer, so Redis holds no word
  of a text (issue 26; ``x``-tagged entries of older releases, words included, are
  never read and expire with their TTL)

An entry of the wrong size or shape is a miss, never a crash.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import orjson

from contract.parameters import Options, Truncation


@dataclass(frozen=True)
class Answer:
    """One text's answer: probabilities in label order, and what the variant adds."""

    probs: np.ndarray
    windows: int | None = None
    explanation: bytes | None = None  # JSON, as the predictor sent it


@dataclass(frozen=True)
class Variant:
    truncation: str = Truncation.HEAD
    explain: bool = False
    granularity: str = "word"

    @classmethod
    def of(cls, options: Options, default_truncation: str) -> Variant:
        if options.explain:  # explanations always tokenize like head (predictor/explain.py)
            return _variant(Truncation.HEAD, True, options.granularity)
        return _variant(options.truncation or default_truncation, False, "word")

    @functools.cached_property  # writes the instance's __dict__, which a frozen dataclass allows
    def key_tag(self) -> str:
        if self.explain:
            return f"e{self.granularity}"
        return "" if self.truncation == Truncation.HEAD else f"t{self.truncation}"

    @property
    def chunks(self) -> bool:
        return self.truncation == "chunks" and not self.explain

    def parameters(self) -> dict:
        """The V2 parameters for the predictor: always explicit, so its own default never decides."""
        if self.explain:
            return {"explain": True, "granularity": self.granularity}
        return {"truncation": self.truncation}

    def encode(self, answer: Answer) -> bytes | np.ndarray:
        probs = np.asarray(answer.probs, dtype=np.float32)
        if self.explain:
            return probs.tobytes() + without_words(answer.explanation or b"")
        if self.chunks:
            return probs.tobytes() + np.int32(answer.windows or 0).tobytes()
        return probs

    def decode(self, value: bytes | None, width: int) -> Answer | None:
        size = width * 4
        if value is None or len(value) < size:
            return None
        probs = np.frombuffer(value[:size], dtype=np.float32)
        if self.explain:
            return Answer(probs, explanation=value[size:]) if len(value) > size else None
        if self.chunks:
            return Answer(probs, windows=int(np.frombuffer(value[size:], np.int32)[0])) if len(value) == size + 4 else None
        return Answer(probs) if len(value) == size else None


@functools.cache  # a handful of combinations: each request shares one Variant instead of building it
def _variant(truncation: str, explain: bool, granularity: str) -> Variant:
    return Variant(truncation, explain, granularity)


def without_words(explanation: bytes) -> bytes:
    """The explanation's JSON with every attribution's ``text`` dropped: contributions and offsets only."""
    value = orjson.loads(explanation)
    for attribution in value.get("attributions", ()):
        attribution.pop("text", None)
    return orjson.dumps(value)


def with_words(explanation: bytes, text: str) -> bytes:
    """An explanation as a client gets it: each attribution's ``text`` is ``text[start:end]`` of the request."""
    value = orjson.loads(explanation)
    for attribution in value.get("attributions", ()):
        attribution["text"] = text[attribution["start"]:attribution["end"]]
    return orjson.dumps(value)
