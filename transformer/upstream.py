"""The transformer's calls to the predictor, over V2 REST or V2 gRPC, with failures mapped to the error table.

Predictor down -> 503 ``predictor_unavailable`` (connect timeout 1 s); slower than
the deadline -> 504 ``timeout``; a predictor error with an ``error_type`` -> the same
error, passed through unchanged; anything else unusable -> 502 ``bad_gateway``.
"""

from __future__ import annotations

import json

import aiohttp
import grpc
import numpy as np
import orjson

from contract import timings
from contract.errors import ERRORS, ErrorType, ServiceError
from contract.schema import CLIENT_HEADER, EXPLANATION_OUTPUT, INPUT_NAME, SCORES_OUTPUT, WINDOWS_OUTPUT
from contract.scores import Scores
from runtime import tracing
from runtime.kserve.client import (
    InferenceGRPCClient,
    InferInput,
    InferRequest,
    InferResponse,
    PredictorConfig,
    grpc_infer,
)

CONNECT_TIMEOUT_S = 1.0
# Reconnect quickly once a restarted predictor is back (gRPC's default backoff grows to minutes).
GRPC_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class PredictorClient:
    """Calls the predictor that ``config`` names (built by transformer/settings.py, which checks the protocol)."""

    def __init__(self, config: PredictorConfig):
        self.host = config.predictor_host
        self.protocol = config.predictor_protocol
        self.timeout_s = config.predictor_request_timeout_seconds
        self.use_ssl = config.predictor_use_ssl
        self._base_url = f"{'https' if self.use_ssl else 'http'}://{self.host}"
        self._client = None  # created in the serving event loop: gRPC channels are bound to one loop

    def __getstate__(self):  # picklable for KServe's multi-worker mode; each worker connects on its own
        return {**self.__dict__, "_client": None}

    @property
    def client(self):
        if self._client is None:
            if self.protocol == "grpc-v2":
                self._client = InferenceGRPCClient(self.host, use_ssl=self.use_ssl, timeout=self.timeout_s,
                                                   retries=0, channel_args=list(GRPC_CHANNEL_ARGS))
            else:
                # Plain aiohttp, not KServe's InferenceRESTClient: its response decoding
                # (InferResponse.from_bytes) drops model_version, which the cache keys need.
                # aiohttp rather than httpx: httpx was 38% of the transformer's CPU per cache
                # miss in a py-spy profile (part of it a failed import retried on every call).
                timeout = aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=CONNECT_TIMEOUT_S)
                self._client = aiohttp.ClientSession(base_url=self._base_url, timeout=timeout)
        return self._client

    async def infer(self, model_name: str, texts: list[str], request_id: str,
                    parameters: dict | None = None, client: str | None = None) -> tuple[Scores, dict]:
        """The predictor's scores for ``texts``, and its timing headers (contract/timings.py). ``client``:
        the hashed name of the client it is for (the predictor's batches take turns across clients)."""
        with tracing.span("predictor call", {"texts": len(texts), "rpc.protocol": self.protocol}, client=True):
            return await self._infer(model_name, texts, request_id, parameters, client)

    async def _infer(self, model_name: str, texts: list[str], request_id: str,
                     parameters: dict | None, client: str | None = None) -> tuple[Scores, dict]:
        headers = tracing.inject({"x-request-id": request_id})  # W3C traceparent, when tracing is on
        if client:
            headers[CLIENT_HEADER] = client
        try:
            if self.protocol == "grpc-v2":
                request = InferRequest(
                    model_name=model_name, request_id=request_id, parameters=parameters,
                    infer_inputs=[InferInput(INPUT_NAME, [len(texts)], "BYTES", list(texts))],
                )
                response, answered = await grpc_infer(self.client, request, tuple(headers.items()), self.timeout_s)
                outputs, version = _grpc_outputs(response)
            else:
                headers["content-type"] = "application/json"
                async with self.client.post(f"/v2/models/{model_name}/infer", data=_rest_body(texts, request_id,
                                            parameters), headers=headers) as reply:
                    payload = await reply.read()
                if reply.status != 200:
                    raise _passed_through(reply.status, payload.decode("utf-8", "replace"))
                (outputs, version), answered = _rest_outputs(payload), reply.headers
        except aiohttp.ConnectionTimeoutError:
            raise self._unavailable("did not accept a connection within 1 s") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise ServiceError(ErrorType.TIMEOUT,
                               f"The predictor did not answer within {self.timeout_s:g} s.") from None
        except aiohttp.ClientError as exc:
            raise self._unavailable(f"is not reachable ({type(exc).__name__})") from None
        except grpc.RpcError as exc:
            raise self._grpc_error(exc) from None
        return _scores(outputs, version, len(texts)), timings.passed_on(answered)

    async def deadline_s(self, model_name: str) -> float | None:
        """The predictor's own deadline, from its REST model metadata (``request_timeout_s``); None when it
        cannot be read: not REST (V2 gRPC metadata has no parameters), not reachable, or not published."""
        if self.protocol != "v2":
            return None
        try:
            async with self.client.get(f"/v2/models/{model_name}") as reply:
                if reply.status != 200:
                    return None
                published = orjson.loads(await reply.read()).get("parameters", {}).get("request_timeout_s")
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, AttributeError):
            return None
        return float(published) if isinstance(published, (int, float)) else None

    def _unavailable(self, what: str) -> ServiceError:
        return ServiceError(ErrorType.PREDICTOR_UNAVAILABLE, f"The predictor at {self.host} {what}; retry shortly.")

    def _grpc_error(self, exc: grpc.RpcError) -> ServiceError:
        code = exc.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            return self._unavailable("is not reachable (gRPC UNAVAILABLE)")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ServiceError(ErrorType.TIMEOUT, f"The predictor did not answer within {self.timeout_s:g} s.")
        status = next((kind.http_status for kind in ERRORS.values() if kind.grpc_status == code.name), 502)
        return _passed_through(status, exc.details() or "")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _passed_through(status: int, body: str) -> ServiceError:
    """The predictor's own error, unchanged when it speaks the error table."""
    try:
        payload = json.loads(body)
        error_type, message = payload["error_type"], payload["error"]
        if error_type in ERRORS:
            return ServiceError(error_type, message)
    except (ValueError, KeyError, TypeError):
        pass
    return ServiceError(ErrorType.BAD_GATEWAY, f"The predictor answered {status}: {body[:300]}")


# An output by name: (its values as an array, its parameters).
Outputs = dict[str, tuple[np.ndarray, dict]]


def _rest_body(texts: list[str], request_id: str, parameters: dict | None) -> bytes:
    """The V2 REST request, written directly: KServe's ``InferRequest.to_rest`` walks the same fields
    through its own objects, a few percent of the transformer's CPU per miss (BENCHMARKS.md)."""
    body: dict = {"id": request_id, "inputs": [{"name": INPUT_NAME, "shape": [len(texts)], "datatype": "BYTES",
                                                "data": texts}]}
    if parameters:
        body["parameters"] = parameters
    return orjson.dumps(body)


def _rest_outputs(payload: bytes) -> tuple[Outputs, str | None]:
    """The outputs and model version of a V2 REST answer (read directly, as ``_rest_body`` writes)."""
    try:
        answer = orjson.loads(payload)
        outputs = {output["name"]: (np.asarray(output["data"]), output.get("parameters") or {})
                   for output in answer["outputs"]}
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ServiceError(ErrorType.BAD_GATEWAY,
                           f"The predictor's answer is not a V2 inference response ({exc!r}).") from None
    return outputs, answer.get("model_version")


def _grpc_outputs(response: InferResponse) -> tuple[Outputs, str | None]:
    return {output.name: (output.as_numpy(), output.parameters or {}) for output in response.outputs}, \
        response.model_version


def _scores(outputs: Outputs, model_version: str | None, count: int) -> Scores:
    values, parameters = outputs.get(SCORES_OUTPUT, (None, {}))
    if values is None or "labels" not in parameters:
        raise ServiceError(ErrorType.BAD_GATEWAY,
                           "The predictor's answer has no 'scores' output with a 'labels' parameter.")
    labels = json.loads(getattr(parameters["labels"], "string_param", parameters["labels"]))
    probs = values.astype(np.float32).reshape(count, len(labels))
    windows, explanations = outputs.get(WINDOWS_OUTPUT), outputs.get(EXPLANATION_OUTPUT)
    return Scores(
        probs=probs, labels=labels, model_version=model_version or "unversioned",
        windows=None if windows is None else [int(w) for w in windows[0].reshape(-1)],
        explanations=None if explanations is None else [
            e.encode() if isinstance(e, str) else bytes(e) for e in explanations[0].reshape(-1)
        ],
    )
