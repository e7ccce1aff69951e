"""The gRPC client half of KServe we use (the transformer's predictor client), and the types it speaks.

Re-exported here so that only this package imports kserve (tests/unit/runtime/test_kserve_internals.py).
"""

from __future__ import annotations

from kserve.inference_client import InferenceGRPCClient
from kserve.predictor_config import PredictorConfig
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

__all__ = ["InferInput", "InferRequest", "InferResponse", "InferenceGRPCClient", "PredictorConfig", "grpc_infer"]


async def grpc_infer(client: InferenceGRPCClient, request: InferRequest, metadata: tuple,
                     timeout_s: float) -> tuple[InferResponse, dict]:
    """Copied (see the module docstring): ``client.infer``, with the answer's initial metadata too."""
    call = client._client_stub.ModelInfer(request=request.to_grpc(), metadata=metadata, timeout=timeout_s)
    response = await call
    return InferResponse.from_grpc(response), dict(await call.initial_metadata() or ())
