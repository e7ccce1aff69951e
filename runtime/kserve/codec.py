"""What the rest of the code needs from KServe besides the server and the client, under names of ours.

The V2 codec: ``parse_request`` reads KServe's ``InferRequest`` (REST or gRPC) into the contract's plain
``ClassifyRequest`` with contract/schema.py's checks, and ``v2_response`` writes the answer as an
``InferResponse``; contract/ itself knows no KServe object.

``Model``: the base class of the model face (runtime/face.py), whose hooks pins.SIGNATURES pins.

KServe's per-stage latency histograms, its log line format (runtime/logs.py keeps its text format KServe's) and its model-server
flag parser (runtime/settings.py adds our flags to it). Kept here so that a KServe upgrade
touches this package only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from kserve import Model
from kserve.logging import KSERVE_LOGGER_DATE_FORMAT as LOG_DATE_FORMAT
from kserve.logging import KSERVE_LOGGER_FORMAT as LOG_FORMAT
from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse, to_http_parameters

from contract import schema
from contract.errors import ErrorType, ServiceError
from contract.parameters import parse_options

# Model: the base of runtime/face.py. The *_HIST_TIME histograms: KServe's per-stage latency series, which
# the transformer's cache-hit fast path (transformer/fastpath.py) fills as the full path would.
__all__ = ["LOG_DATE_FORMAT", "LOG_FORMAT", "Model", "POST_HIST_TIME", "PRE_HIST_TIME", "PREDICT_HIST_TIME",
           "server_flags"]


def server_flags() -> argparse.ArgumentParser:
    """KServe's own model-server flags (--http_port, --workers, ...), as a parent parser for ours."""
    from kserve import model_server

    return model_server.parser


def plain_parameters(parameters: Any) -> Any:
    """A request's ``parameters`` as the contract reads them: gRPC's map of InferParameter as a dict."""
    if parameters and not isinstance(parameters, dict) and hasattr(parameters, "items"):
        return to_http_parameters(parameters)
    return parameters


def parse_request(payload: Any, limits: schema.Limits) -> schema.ClassifyRequest:
    """Any protocol's request: a V2 ``InferRequest`` here, a V1 body by contract/schema.py."""
    if not isinstance(payload, InferRequest):
        return schema.parse_request(payload, limits)
    texts = parse_v2(payload)  # first: it checks there is exactly one input
    name = payload.inputs[0].name
    options = dataclasses.replace(parse_options(plain_parameters(payload.parameters)), field_name=name)
    schema.check_limits(texts, limits, name)
    return schema.ClassifyRequest(texts, payload, options)


def _v2_items(tensor) -> Sequence[Any]:
    if tensor._raw_data is not None:  # gRPC raw_input_contents: length-prefixed bytes
        try:
            return tensor.as_numpy().reshape(-1).tolist()
        except Exception as exc:  # malformed framing or a shape that does not match it
            raise ServiceError(
                ErrorType.INVALID_TENSOR, f"Input '{tensor.name}' raw contents do not decode as BYTES: {exc}."
            ) from None
    return schema.v2_json_items(tensor.data)


def parse_v2(request: InferRequest) -> list[str]:
    """The texts of a V2 request: the contract checks the header, then the items decoded here."""
    schema.check_v2_input_count(len(request.inputs))
    tensor = request.inputs[0]
    shape = list(tensor.shape)
    schema.check_v2_tensor(tensor.name, tensor.datatype, shape)
    return schema.v2_texts(tensor.name, shape, _v2_items(tensor))


def v2_response(
    request: InferRequest, probs: np.ndarray, labels: Sequence[str], model_name: str, model_version: str,
    windows: Sequence[int] | None = None, explanations: Sequence[dict | bytes] | None = None,
) -> InferResponse:
    probs = np.asarray(probs, dtype=np.float32).reshape(len(probs), len(labels))
    best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    tensors = [
        (schema.LABEL_OUTPUT, "BYTES", np.array([labels[i] for i in best], dtype=np.object_), None),
        (schema.SCORE_OUTPUT, "FP32", probs[np.arange(len(probs)), best], None),
        (schema.SCORES_OUTPUT, "FP32", probs, {"labels": json.dumps(list(labels))}),
    ]
    if windows is not None:
        tensors.append((schema.WINDOWS_OUTPUT, "INT32", np.asarray(windows, dtype=np.int32), None))
    if explanations is not None:
        encoded = [e if isinstance(e, bytes) else orjson.dumps(e) for e in explanations]
        tensors.append((schema.EXPLANATION_OUTPUT, "BYTES", np.array(encoded, dtype=np.object_), None))
    outputs = []
    for name, datatype, array, parameters in tensors:
        output = InferOutput(name, list(array.shape), datatype, parameters=parameters)
        # As lists: KServe's to_grpc cannot take numpy data when the request used raw contents.
        output.set_data_from_numpy(array, binary_data=False)
        outputs.append(output)
    return InferResponse(
        response_id=request.id or str(uuid.uuid4()),  # V2 responses require an id
        model_name=model_name,
        model_version=model_version,
        infer_outputs=outputs,
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )
