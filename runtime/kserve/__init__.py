"""The one package that imports KServe: every internal we copy or override (pinned to kserve==0.21.0).

KServe registers its own exception handlers (``{"error": ...}`` without an
``error_type``) when it builds the FastAPI app, after anything we could register
beforehand, and ``ModelServer.start`` is the only place that picks the server
classes; so those classes are subclassed here and ``start`` is repeated with them.
What each override adds lives outside this room (runtime/rest.py, runtime/grpc.py,
runtime/shutdown.py); what stays here is the coupling to KServe's (and uvicorn's)
insides. ``pins.UPSTREAM`` pins a hash of the source of each upstream function below, and
tests/unit/runtime/test_kserve_internals.py fails when a KServe or uvicorn upgrade changes
one: re-read it, bring the copy or override in step, then update the hash.

Copied (the whole function repeated, with our changes marked):
  - ``kserve.model_server.ModelServer.start``: our REST/gRPC server classes, our
    logging config for ``--workers`` processes, gRPC options from our parse (not
    KServe's import-time ``args``), the drain marker for worker processes.
  - ``kserve.protocol.grpc.server.GRPCServer.start``: our servicer and interceptors.
  - ``kserve.protocol.grpc.servicer.InferenceServicer.ModelInfer``: the model's response
    headers (x-cache, the timings of contract/timings.py) sent as initial metadata.
  - ``kserve.inference_client.InferenceGRPCClient.infer`` (``grpc_infer``): keeping the
    call, whose initial metadata has the predictor's timings.
Overridden or extended:
  - ``ModelServer.__init__`` (our DataPlane replaces ``self.dataplane``), ``ModelServer.stop``
    (the drain first; once only), ``ModelServer._serve`` (private; waits for every server).
  - ``RESTServer.__init__`` (its ``self._server``, a ``_RefreshingServer``, gets our
    drain by a ``__class__`` swap), ``RESTServer._add_middlewares``,
    ``_register_endpoints`` and ``_add_exception_handlers`` (private; extended).
  - ``RESTServerMultiProcess.__init__``: the ``RESTServer`` it builds gets our class.
  - ``RESTServerProcess.is_alive`` (60 s instead of 5 s for a worker's first health
    ping), installed by rebinding the module-level name ``RESTServerProcess`` that
    ``RESTServerMultiProcess.init_processes`` and ``keep_subprocess_alive`` call.
  - ``kserve.protocol.rest.server._RefreshingServer`` (a private class; subclassed), and
    uvicorn's ``Server.handle_exit`` / ``on_tick`` (we append to ``_captured_signals``).
  - ``DataPlane.ready``, ``model_ready``, ``decode_inference_request`` (extended);
    ``DataPlane.explain`` (replaced: KServe's returns the request's headers as the response's).
  - ``InferenceServicer.RepositoryModelLoad`` / ``RepositoryModelUnload`` (replaced).
  - ``ExceptionToStatusInterceptor.handle_exception`` (extended, ``errors.ServiceErrorToStatus``: our
    ``ServiceError``, a plain exception of contract/, given to it as the ``GrpcException`` it aborts with).
Private attributes relied on: ``InferenceGRPCClient._client_stub``, ``RESTServer._server``, ``RESTServerMultiProcess._rest_server``,
``GRPCServer._server`` / ``_port`` / ``_kwargs`` / ``_data_plane`` / ``_model_repository_extension``,
``uvicorn.Server._captured_signals``, ``InferInput._raw_data`` (codec: gRPC raw contents or not).
"
Modules: ``server`` (ModelServer), ``rest_server``, ``grpc_server``, ``dataplane``, ``client`` (the
gRPC client copy and the V2 types the transformer speaks), ``codec`` (what else of KServe the other
packages need, by a public name of ours, and the V2 codec: ``InferRequest`` to the contract's plain
``ClassifyRequest``, scores to ``InferResponse``), ``errors`` (exceptions to the error table and to gRPC
statuses), ``pins``. Nothing here patches KServe at import:
``install()``, called by runtime/server.py before the server starts, does.
"""

from __future__ import annotations


def install() -> None:
    """Apply the one module-level override (``--workers`` processes' health-ping timeout); idempotent."""
    from runtime.kserve.rest_server import install_patient_workers

    install_patient_workers()
