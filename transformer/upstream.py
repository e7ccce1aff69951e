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
from kserve.inference_client import InferenceGRPCClient
from kserve.predictor_config import PredictorConfig
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from contract import timings
from contract.errors import ERRORS, ServiceError
from contract.model import Scores
from contract.schema import EXPLANATION_OUTPUT, INPUT_NAME, SCORES_OUTPUT, WINDOWS_OUTPUT
from runtime import tracing
from runtime.kserve_internals import grpc_infer

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
                    parameters: dict | None = None) -> tuple[Scores, dict]:
        """The predictor's scores for ``texts``, and its timing headers (contract/timings.py)."""
        with tracing.span("predictor call", {"texts": len(texts), "rpc.protocol": self.protocol}, client=True):
            return await self._infer(model_name, texts, request_id, parameters)

    async def _infer(self, model_name: str, texts: list[str], request_id: str,
                     parameters: dict | None) -> tuple[Scores, dict]:
        request = InferRequest(
            model_name=model_name, request_id=request_id, parameters=parameters,
            infer_inputs=[InferInput(INPUT_NAME, [len(texts)], "BYTES", list(texts))],
        )
        headers = tracing.inject({"x-request-id": request_id})  # W3C traceparent, when tracing is on
        try:
            if self.protocol == "grpc-v2":
                response, answered = await grpc_infer(self.client, request, tuple(headers.items()), self.timeout_s)
            else:
                body = orjson.dumps(request.to_rest()[0], option=orjson.OPT_SERIALIZE_NUMPY)
                headers["content-type"] = "application/json"
                async with self.client.post(f"/v2/models/{model_name}/infer", data=body, headers=headers) as reply:
                    payload = await reply.read()
                if reply.status != 200:
                    raise _passed_through(reply.status, payload.decode("utf-8", "replace"))
                response, answered = InferResponse.from_rest(orjson.loads(payload)), reply.headers
        except aiohttp.ConnectionTimeoutError:
            raise self._unavailable("did not accept a connection within 1 s") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise ServiceError("timeout", f"The predictor did not answer within {self.timeout_s:g} s.") from None
        except aiohttp.ClientError as exc:
            raise self._unavailable(f"is not reachable ({type(exc).__name__})") from None
        except grpc.RpcError as exc:
            raise self._grpc_error(exc) from None
        return _scores(response, len(texts)), timings.passed_on(answered)

    def _unavailable(self, what: str) -> ServiceError:
        return ServiceError("predictor_unavailable", f"The predictor at {self.host} {what}; retry shortly.")

    def _grpc_error(self, exc: grpc.RpcError) -> ServiceError:
        code = exc.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            return self._unavailable("is not reachable (gRPC UNAVAILABLE)")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ServiceError("timeout", f"The predictor did not answer within {self.timeout_s:g} s.")
        status = next((kind.http_status for kind in ERRORS.values() if kind.grpc_status == code), 502)
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
    return ServiceError("bad_gateway", f"The predictor answered {status}: {body[:300]}")


def _scores(response: InferResponse, count: int) -> Scores:
    outputs = {output.name: output for output in response.outputs}  # one pass, not one per name
    scores = outputs.get(SCORES_OUTPUT)
    if scores is None or not scores.parameters or "labels" not in scores.parameters:
        raise ServiceError("bad_gateway", "The predictor's answer has no 'scores' output with a 'labels' parameter.")
    labels_parameter = scores.parameters["labels"]
    labels = json.loads(getattr(labels_parameter, "string_param", labels_parameter))
    probs = scores.as_numpy().astype(np.float32).reshape(count, len(labels))
    windows, explanations = outputs.get(WINDOWS_OUTPUT), outputs.get(EXPLANATION_OUTPUT)
    return Scores(
        probs=probs, labels=labels, model_version=response.model_version or "unversioned",
        windows=None if windows is None else [int(w) for w in windows.as_numpy().reshape(-1)],
        explanations=None if explanations is None else [
            e.encode() if isinstance(e, str) else bytes(e) for e in explanations.as_numpy().reshape(-1)
        ],
    )
