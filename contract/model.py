"""The one model face both services show KServe: any protocol in, texts scored, the answer in kind.

As in KServe's own huggingfaceserver, ``preprocess`` parses (the shared schema, the
request limits), ``predict`` computes and ``postprocess`` encodes the answer: V1's
``predictions`` or a V2 ``InferResponse``, whichever the request was. The metadata
(tensor types, label order, model version) is answered here too. A service
implements only ``score``, texts in and ``Scores`` out, and says what it knows of its
labels and version; a new protocol or verb is then written once, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import kserve
import numpy as np

from contract import schema


@dataclass(frozen=True)
class Scores:
    """What scoring texts tells: one row of probabilities per text, and who computed them."""

    probs: np.ndarray  # (n, k) float32, columns in ``labels`` order
    labels: list[str]
    model_version: str  # the version to answer with (and, in the transformer, to cache under)


@dataclass(frozen=True)
class Scored:
    """``predict``'s result, handed to ``postprocess``: the request (to answer in kind) and its scores."""

    request: schema.ClassifyRequest
    scores: Scores


class TextClassificationModel(kserve.Model):
    # What a served model reports; None until known (the transformer learns both from the predictor).
    labels: list[str] | None = None
    model_version: str | None = None

    def __init__(self, name: str, limits: schema.Limits, return_response_headers: bool = False):
        super().__init__(name, return_response_headers=return_response_headers)
        self.limits = limits

    async def score(self, texts: Sequence[str], headers: dict, response_headers: dict | None) -> Scores:
        """Probabilities for ``texts``, in order; raise ``ServiceError`` for what a client should see."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Metadata parameters of this service besides labels and version (e.g. its backend)."""
        return {}

    def validate(self, payload):
        return payload  # preprocess already validated it with the shared schema

    async def preprocess(self, payload, headers: dict | None = None) -> schema.ClassifyRequest:
        return schema.parse_request(payload, self.limits)

    async def predict(self, request: schema.ClassifyRequest, headers: dict | None = None,
                      response_headers: dict | None = None) -> Scored:
        return Scored(request, await self.score(request.texts, headers or {}, response_headers))

    async def postprocess(self, result: Scored, headers: dict | None = None, response_headers: dict | None = None):
        scores = result.scores
        if result.request.v2 is None:
            return schema.v1_response(scores.probs, scores.labels)
        return schema.v2_response(result.request.v2, scores.probs, scores.labels, self.name, scores.model_version)

    def get_input_types(self) -> list[dict]:
        return schema.tensor_metadata(len(self.labels) if self.labels else -1)[0]

    def get_output_types(self) -> list[dict]:
        return schema.tensor_metadata(len(self.labels) if self.labels else -1)[1]

    def metadata_parameters(self) -> dict:
        """Published in REST model metadata: what a client needs to read ``scores``."""
        return {"labels": self.labels, "model_version": self.model_version, **self.describe()}
