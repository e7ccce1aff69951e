"""The request and response shapes of every protocol, in one module.

V1 REST   ``{"instances": ["text", ...]}`` -> ``{"predictions": [{"label", "score", "scores"}]}``
V2 REST / gRPC   one BYTES input of shape ``[n]`` (or ``[n, 1]``) -> outputs ``label``
(BYTES ``[n]``), ``score`` (FP32 ``[n]``) and ``scores`` (FP32 ``[n, k]``, in the label
order published in the model metadata and in the ``labels`` parameter of ``scores``).

Both services parse and answer through runtime/face.py, so their shapes and their 400s
cannot drift apart. This module is data only: it checks V1 bodies and a V2 input's name,
datatype, shape and items, and writes V1 answers; KServe's V2 request and response objects
are read and written in runtime/kserve/codec.py, with the checks and limits of this module.

Request parameters (``truncation``, explanations: contract/parameters.py) add to the
answer: with ``truncation: chunks`` each V1 prediction has ``windows`` and V2 an INT32
output ``windows`` ``[n]``; an explanation is V1's ``explanations`` list (``:explain``)
and V2's BYTES output ``explanation`` ``[n]``, one JSON object per text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from contract.errors import ErrorType, ServiceError
from contract.parameters import NO_OPTIONS, Options, parse_options

INPUT_NAME = "text"
LABEL_OUTPUT, SCORE_OUTPUT, SCORES_OUTPUT = "label", "score", "scores"
WINDOWS_OUTPUT, EXPLANATION_OUTPUT = "windows", "explanation"
V1_EXAMPLE = '{"instances": ["I love this", "I hate this"]}'


# The transformer names the client a request came from (a hash of its rate-limit key, never the key) to the
# predictor, whose batches take turns across clients (predictor/batcher.py). Only the transformer reaches a
# predictor (its AuthorizationPolicy), so the predictor takes the header as given, bounded in length.
CLIENT_HEADER = "x-tc-client"
CLIENT_HEADER_MAX = 64


def client_of(value: str | bytes | None) -> str | None:
    """The client a request names in ``CLIENT_HEADER`` (a REST header's bytes, a gRPC metadata or model
    header's str), bounded in length; None when it names none."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value[:CLIENT_HEADER_MAX] if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Limits:
    """What one request may carry; both services apply the same limits (runtime/settings.py declares them)."""

    max_texts: int
    max_chars: int
    max_body_bytes: int


@dataclass(frozen=True)
class ClassifyRequest:
    """What every protocol boils down to: the texts, and the V2 request to answer (None for V1).

    ``v2`` is KServe's request object, opaque here: only runtime/kserve/codec.py reads it and answers it.
    """

    texts: list[str]
    v2: Any = None
    options: Options = NO_OPTIONS


def parse_request(payload: Any, limits: Limits) -> ClassifyRequest:
    """A V1 body (a JSON object, or its bytes); runtime/kserve/codec.py's ``parse_request`` takes V2 too."""
    body = _v1_body(payload)
    request = ClassifyRequest(_v1_instances(body), options=parse_options(body.get("parameters")))
    check_limits(request.texts, limits, "instances")
    return request


def check_limits(texts: Sequence[str], limits: Limits, field_name: str) -> None:
    if len(texts) > limits.max_texts:
        raise ServiceError(
            ErrorType.TOO_MANY_TEXTS,
            f"The request has {len(texts)} texts; the limit is {limits.max_texts} per request."
        )
    for i, text in enumerate(texts):
        if len(text) > limits.max_chars:
            raise ServiceError(
                ErrorType.TEXT_TOO_LONG,
                f"{field_name}[{i}] has {len(text)} characters; the limit is {limits.max_chars} per text.",
            )
        if not text.isascii():
            _check_encodable(text, f"{field_name}[{i}]")


def _check_encodable(text: str, where: str) -> None:
    """JSON's ``"\\ud800"`` parses to a lone surrogate, which no UTF-8 encoder takes: the tokenizer
    and orjson fail on it later, as a 500 and for every text in the batch. Refused here instead."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ServiceError(
            ErrorType.INVALID_TEXT,
            f"{where} has a lone surrogate (\\u{ord(text[exc.start]):04x} at character {exc.start}); "
            "send text that is valid Unicode."
        ) from None


# A JSON escape of one half of a surrogate pair without the other half ("\\ud800"): valid JSON, but no
# text. orjson and pydantic refuse such a body with a JSON error; ``unparsable_body`` tells it apart.
_LONE_SURROGATE_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"  # a high half with no low half after it
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a low half with no high half before it
)


def has_lone_surrogate_escape(raw: bytes) -> bool:
    return _LONE_SURROGATE_ESCAPE.search(raw) is not None


def unparsable_body(raw: bytes, detail: str, example: str = "") -> ServiceError:
    """The error for a body no JSON parser took: ``invalid_text`` when a lone surrogate escape is why
    (as for a body that parsed: ``_check_encodable``), else ``invalid_json``."""
    if has_lone_surrogate_escape(raw):
        return ServiceError(ErrorType.INVALID_TEXT, "The body has a lone surrogate escape (such as \\ud800 without "
                                                    "its pair); send text that is valid Unicode.")
    return ServiceError(ErrorType.INVALID_JSON,
                        f"The body is not valid JSON: {detail}." + (f" Send {example}." if example else ""))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


def _text(item: Any, where: str) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, (bytes, bytearray, np.bytes_)):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ServiceError(
                ErrorType.INVALID_TEXT, f"{where} is not valid UTF-8 ({exc.reason} at byte {exc.start})."
            ) from None
    raise ServiceError(
        ErrorType.INVALID_REQUEST,
        f"{where} is {_json_type(item)}; every text must be a string (use \"\" for empty text)."
    )


def _v1_body(body: Any) -> dict:
    if isinstance(body, (bytes, bytearray)):  # KServe passes non-JSON content types through raw
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise unparsable_body(bytes(body), str(exc), V1_EXAMPLE) from None
    if not isinstance(body, dict):
        raise ServiceError(ErrorType.INVALID_REQUEST,
                           f"The body is {_json_type(body)}; send a JSON object like {V1_EXAMPLE}.")
    return body


def parse_v1(body: Any) -> list[str]:
    return _v1_instances(_v1_body(body))


def _v1_instances(body: dict) -> list[str]:
    if "instances" not in body:
        raise ServiceError(ErrorType.INVALID_REQUEST, f'Missing field "instances"; send {V1_EXAMPLE}.')
    instances = body["instances"]
    if instances is None:
        raise ServiceError(ErrorType.INVALID_REQUEST, f'Field "instances" is null; send {V1_EXAMPLE}.')
    if not isinstance(instances, list):
        raise ServiceError(
            ErrorType.INVALID_REQUEST, f'Field "instances" is {_json_type(instances)}; it must be an array of strings.'
        )
    # a str is taken as is, without a call or the error's location string: the common case, per text
    return [item if type(item) is str else _text(item, f"instances[{i}]") for i, item in enumerate(instances)]


def check_v2_input_count(count: int) -> None:
    if count != 1:
        raise ServiceError(
            ErrorType.INVALID_TENSOR,
            f"Expected exactly one input (a BYTES tensor of texts named '{INPUT_NAME}'), got {count}.",
        )


def check_v2_tensor(name: str, datatype: str, shape: list[int]) -> None:
    """The V2 input's header; checked before its items are decoded."""
    if datatype != "BYTES":
        raise ServiceError(
            ErrorType.INVALID_TENSOR, f"Input '{name}' has datatype {datatype}; texts must be sent as BYTES."
        )
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise ServiceError(ErrorType.INVALID_TENSOR, f"Input '{name}' has shape {shape}; expected [n] or [n, 1].")


def v2_json_items(data: Any) -> list[Any]:
    """A V2 JSON input's ``data``: [n, 1] tensors arrive as nested JSON arrays; flatten exactly one level."""
    data = data if data is not None else []
    return [item for row in data for item in row] if data and all(isinstance(r, list) for r in data) else list(data)


def v2_texts(name: str, shape: list[int], items: Sequence[Any]) -> list[str]:
    """The texts of a V2 input whose header ``check_v2_tensor`` passed, from its decoded items."""
    if len(items) != shape[0]:
        raise ServiceError(
            ErrorType.INVALID_TENSOR, f"Input '{name}' has shape {shape} but carries {len(items)} texts."
        )
    return [item if type(item) is str else _text(item, f"{name}[{i}]") for i, item in enumerate(items)]


def tensor_metadata(num_labels: int) -> tuple[list[dict], list[dict]]:
    """The V2 metadata inputs and outputs (label names are added by the REST metadata route)."""
    inputs = [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}]
    outputs = [
        {"name": LABEL_OUTPUT, "datatype": "BYTES", "shape": [-1]},
        {"name": SCORE_OUTPUT, "datatype": "FP32", "shape": [-1]},
        {"name": SCORES_OUTPUT, "datatype": "FP32", "shape": [-1, num_labels]},
    ]
    return inputs, outputs


def v1_response(probs: np.ndarray, labels: Sequence[str], windows: Sequence[int] | None = None,
                explanations: Sequence[dict] | None = None) -> dict:
    """One prediction per text; ``scores`` sorted best first, as the HF pipeline does with top_k=None."""
    predictions = []
    for row in probs.tolist():
        ranked = sorted(zip(labels, row), key=lambda pair: pair[1], reverse=True)
        predictions.append(
            {
                "label": ranked[0][0],
                "score": ranked[0][1],
                "scores": [{"label": label, "score": score} for label, score in ranked],
            }
        )
    if windows is not None:
        for prediction, count in zip(predictions, windows):
            prediction["windows"] = int(count)
    if explanations is not None:  # KServe's V1 :explain answer: {"predictions": [...], "explanations": [...]}
        return {"predictions": predictions, "explanations": list(explanations)}
    return {"predictions": predictions}
