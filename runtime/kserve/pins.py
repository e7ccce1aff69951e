"""Every upstream function we copy or override, and every signature our model hooks rely on, pinned.

``UPSTREAM``: sha256 of ``inspect.getsource(...)``, first 16 hex digits, at kserve==0.21.0 (and the
uvicorn it pins). ``SIGNATURES``: ``str(inspect.signature(...))`` of the hooks KServe calls on our
model face and that we call on its data plane. tests/unit/runtime/test_kserve_internals.py fails, naming
the function, when an upgrade changes one: re-read it, bring the copy or override in step (this
package), then update the pin.
"""

from __future__ import annotations

KSERVE_VERSION = "0.21.0"
# sha256 of inspect.getsource(...), first 16 hex digits; tests/unit/runtime/test_kserve_internals.py checks them.
UPSTREAM = {
    "kserve.model_server.ModelServer.start": "efa96502018b04e9",
    "kserve.model_server.ModelServer.__init__": "1029569ff98894af",
    "kserve.model_server.ModelServer.stop": "c87cc006e46d8397",
    "kserve.model_server.ModelServer._serve": "ff3ff3ccb85e49d3",
    "kserve.protocol.grpc.server.GRPCServer.start": "f4ea7b4eb6f0d9f7",
    "kserve.protocol.rest.server.RESTServer.__init__": "c85b4ca79cab7f7c",
    "kserve.protocol.rest.server.RESTServer._add_middlewares": "eb71860ac9500c56",
    "kserve.protocol.rest.server.RESTServer._register_endpoints": "841b714394633cb5",
    "kserve.protocol.rest.server.RESTServer._add_exception_handlers": "ca0a28c1b356a6eb",
    "kserve.protocol.rest.server._RefreshingServer": "58f0ab1fdd3602cc",
    "kserve.protocol.rest.multiprocess.server.RESTServerMultiProcess.__init__": "ff15cd5a0c374e22",
    "kserve.protocol.dataplane.DataPlane.ready": "092ec924c2558e83",
    "kserve.protocol.dataplane.DataPlane.model_ready": "6c7910fbb1c9d6b7",
    "kserve.protocol.dataplane.DataPlane.decode_inference_request": "d9b169889aa3e564",
    "kserve.protocol.dataplane.DataPlane.explain": "7995ba27efb3032f",
    "kserve.protocol.grpc.servicer.InferenceServicer.RepositoryModelLoad": "67fee58ff64a6edd",
    "kserve.protocol.grpc.servicer.InferenceServicer.RepositoryModelUnload": "d8a895c6fdc3d1cc",
    "kserve.protocol.rest.multiprocess.server.RESTServerProcess.is_alive": "b5d7ea48fc1a204a",
    "kserve.protocol.rest.multiprocess.server.RESTServerMultiProcess.init_processes": "75142004d4ac292e",
    "kserve.protocol.rest.multiprocess.server.RESTServerMultiProcess.keep_subprocess_alive": "22dd987ecf8b4f41",
    "kserve.protocol.grpc.servicer.InferenceServicer.ModelInfer": "49bf48c9159ebe9f",
    "kserve.inference_client.InferenceGRPCClient.infer": "e5f3295be84562b3",
    # errors.ServiceErrorToStatus hands our ServiceError to these as a GrpcException: its code and details.
    "kserve.protocol.grpc.interceptors.ExceptionToStatusInterceptor.handle_exception": "f9a4d0abc9843c24",
    "grpc_interceptor.AsyncExceptionToStatusInterceptor.handle_exception": "12f151b487ff8773",
    # The model hooks: KServe's Model.__call__ drives our face's preprocess/predict/postprocess/explain,
    # and DataPlane.infer is what the gRPC servicer copy (grpc_server.py) calls.
    "kserve.model.Model.__call__": "acf019685a2c07de",
    "kserve.protocol.dataplane.DataPlane.infer": "c2d45f0682235cdc",
    "uvicorn.Server.handle_exit": "553276efa26e09ea",
    "uvicorn.Server.on_tick": "60ea49b06ccf68c1",
}
# The hooks our model face (runtime/face.py) overrides: KServe calls them with these parameters.
SIGNATURES = {
    "kserve.model.Model.__call__": "(self, body: Union[Dict, cloudevents.http.event.CloudEvent, kserve.protocol.infer_type.InferRequest], headers: Optional[Dict[str, str]] = None, verb: kserve.model.InferenceVerb = <InferenceVerb.PREDICT: 2>) -> Union[Dict, kserve.protocol.infer_type.InferResponse, List[str], Awaitable[Union[Dict, kserve.protocol.infer_type.InferResponse, List[str]]]]",
    "kserve.model.Model.preprocess": "(self, payload: Union[Dict, kserve.protocol.infer_type.InferRequest], headers: Dict[str, str] = None) -> Union[Dict, kserve.protocol.infer_type.InferRequest]",
    "kserve.model.Model.predict": "(self, payload: Union[Dict, kserve.protocol.infer_type.InferRequest, grpc_predict_v2_pb2.ModelInferRequest], headers: Dict[str, str] = None, response_headers: Dict[str, str] = None) -> Union[Dict, kserve.protocol.infer_type.InferResponse, AsyncIterator[Any]]",
    "kserve.model.Model.postprocess": "(self, result: Union[Dict, kserve.protocol.infer_type.InferResponse], headers: Dict[str, str] = None, response_headers: Dict[str, str] = None) -> Union[Dict, kserve.protocol.infer_type.InferResponse]",
    "kserve.model.Model.explain": "(self, payload: Dict, headers: Dict[str, str] = None) -> Dict",
    "kserve.protocol.dataplane.DataPlane.infer": '(self, model_name: str, request: Union[Dict, kserve.protocol.infer_type.InferRequest], headers: Optional[Dict[str, str]] = None) -> Tuple[Union[Dict, kserve.protocol.infer_type.InferResponse], Dict[str, str]]',
}
