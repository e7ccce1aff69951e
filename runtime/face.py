"""The one model face both services show KServe (moved from contract/: it is a server object, not data): any protocol in, texts scored, the answer in kind.

As in KServe's own huggingfaceserver, ``preprocess`` parses (the shared schema, the
request limits), ``predict`` computes and ``postprocess`` encodes the answer: V1's
``predictions`` or a V2 ``InferResponse``, whichever the request was. The metadata
(tensor types, label order, model version) is answered here too. A service
implements only ``score``, texts (and the request's options: truncation, explain) in
and ``Scores`` out, and says what it knows of its labels and version; a new protocol or
verb is then written once, here. V1 ``:explain`` is one: KServe calls ``explain``,
which scores with ``explain`` set and answers in KServe's ``{"predictions",
"explanations"}`` shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from contract import schema
from contract.parameters import Options
from contract.scores import Scores
from runtime import tracing
from runtime.kserve import codec
from runtime.kserve.codec import Model


@dataclass(frozen=True)
class Scored:
    """``predict``'s result, handed to ``postprocess``: the request (to answer in kind) and its scores."""

    request: schema.ClassifyRequest
    scores: Scores


class TextClassificationModel(Model):
    # What a served model reports; None until known (the transformer learns both from the predictor).
    labels: list[str] | None = None
    model_version: str | None = None

    def __init__(self, name: str, limits: schema.Limits, return_response_headers: bool = False):
        super().__init__(name, return_response_headers=return_response_headers)
        self.limits = limits

    async def score(self, texts: Sequence[str], headers: dict, options: Options) -> Scores:
        """Probabilities for ``texts``, in order, and what was measured (``Scores.measured``, sent as response
        headers); raise ``ServiceError`` for what a client should see."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Metadata parameters of this service besides labels and version (e.g. its backend)."""
        return {}

    def validate(self, payload):
        return payload  # preprocess already validated it with the shared schema

    async def preprocess(self, payload, headers: dict | None = None) -> schema.ClassifyRequest:
        with tracing.span("parse"):  # both services' parse span, owned here once
            return codec.parse_request(payload, self.limits)

    async def predict(self, request: schema.ClassifyRequest, headers: dict | None = None,
                      response_headers: dict | None = None) -> Scored:
        return Scored(request, await self.score(request.texts, headers or {}, request.options))

    async def explain(self, request: schema.ClassifyRequest, headers: dict | None = None) -> Scored:
        """V1 ``:explain``: the prediction with ``explain`` set (its ``parameters`` may ask for tokens)."""
        request = dataclasses.replace(request, options=dataclasses.replace(request.options, explain=True))
        return await self.predict(request, headers)

    async def postprocess(self, result: Scored, headers: dict | None = None, response_headers: dict | None = None):
        scores = result.scores
        if response_headers is not None:  # KServe gives explain() no such dict; the scores carry it here
            response_headers.update(scores.measured)
        if result.request.v2 is None:
            explanations = None if scores.explanations is None else [
                orjson.loads(e) if isinstance(e, bytes) else e for e in scores.explanations]
            return schema.v1_response(scores.probs, scores.labels, windows=scores.windows, explanations=explanations)
        return codec.v2_response(result.request.v2, scores.probs, scores.labels, self.name, scores.model_version,
                                 windows=scores.windows, explanations=scores.explanations)

    def get_input_types(self) -> list[dict]:
        return schema.tensor_metadata(len(self.labels) if self.labels else -1)[0]

    def get_output_types(self) -> list[dict]:
        return schema.tensor_metadata(len(self.labels) if self.labels else -1)[1]

    def metadata_parameters(self) -> dict:
        """Published in REST model metadata: what a client needs to read ``scores``."""
        return {"labels": self.labels, "model_version": self.model_version, **self.describe()}
