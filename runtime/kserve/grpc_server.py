"""KServe's gRPC server with our servicer (response headers as initial metadata, no repository) and interceptors."""

from __future__ import annotations

import time
from concurrent import futures

from grpc import aio
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc import server as kserve_grpc
from kserve.protocol.grpc import servicer as kserve_servicer
from kserve.protocol.grpc.interceptors import LoggingInterceptor
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.utils.utils import to_headers

from contract import timings
from runtime import tracing
from runtime.grpc import GrpcAccessLog, repository_disabled
from runtime.kserve.dataplane import version_or_lookup_error
from runtime.kserve.errors import ServiceErrorToStatus


class InferenceServicer(kserve_servicer.InferenceServicer):
    """KServe's servicer without the model repository extension (see RESTServer._register_endpoints),
    and with the model's response headers sent as initial metadata (KServe drops them)."""

    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:
        """Copied (see the module docstring), plus the metadata: x-cache and the timings of contract/timings.py,
        as REST sends them in headers."""
        started = time.perf_counter()
        self.validate_grpc_request(request)
        response_body, response_headers = await self._data_plane.infer(
            request=InferRequest.from_grpc(request), headers=to_headers(context), model_name=request.model_name
        )
        metadata = [(name.lower(), str(value)) for name, value in response_headers.items()
                    if name.lower() not in ("content-type", "content-length")]
        await context.send_initial_metadata((*metadata, (timings.TOTAL_TIME, timings.ms(time.perf_counter() - started))))
        if isinstance(response_body, pb.ModelInferResponse):
            return response_body
        if isinstance(response_body, InferResponse):
            return response_body.to_grpc()
        return pb.ModelInferResponse(id=response_body["id"], model_name=response_body["model_name"],
                                     outputs=response_body["outputs"])

    async def RepositoryModelLoad(self, request, context):
        raise repository_disabled("Loading")

    async def RepositoryModelUnload(self, request, context):
        raise repository_disabled("Unloading")


class GRPCServer(kserve_grpc.GRPCServer):
    extra_interceptors: tuple = ()  # innermost, after the access log (which so sees their errors)

    async def start(self, max_workers):
        """Copied (see the module docstring): our servicer; our access log and metrics as the innermost
        interceptor, so it sees ServiceError before KServe's interceptor makes it a status."""
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(
                LoggingInterceptor(),
                ServiceErrorToStatus(),  # ours: KServe's, given our ServiceError as a GrpcException
                GrpcAccessLog(lambda name: version_or_lookup_error(self._data_plane, name)),  # ours
                *((tracing.GrpcTrace(),) if tracing.ENABLED else ()),  # ours: only when tracing is on
                *self.extra_interceptors,  # ours
            ),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
                *self._kwargs.get("grpc_options", ()),  # ours: connection bounds (runtime/grpc.py server_options)
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self._data_plane, self._model_repository_extension), self._server  # ours
        )
        listen_addr = f"[::]:{self._port}"
        self._server.add_insecure_port(listen_addr)
        kserve_grpc.logger.info(f"Starting gRPC server with {max_workers} workers")
        kserve_grpc.logger.info("Starting gRPC server on %s", listen_addr)
        await self._server.start()
        await self._server.wait_for_termination()
