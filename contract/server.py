"""KServe's ModelServer with the project's error table and model metadata installed.

KServe registers its own exception handlers (``{"error": ...}`` without an
``error_type``) when it builds the FastAPI app, after anything we could register
beforehand. So the REST server class is subclassed to add ours *after* KServe's, and
``ModelServer.start`` is repeated with that class: it is the only place KServe picks
the class. Keep ``start`` in step with the pinned kserve version (see pyproject.toml).
"""

from __future__ import annotations

import asyncio
from typing import List

import kserve
import pydantic
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.model import BaseKServeModel
from kserve.protocol import dataplane as kserve_dataplane
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.rest import server as kserve_rest
from kserve.protocol.rest.multiprocess import server as kserve_multiprocess
from kserve.protocol.rest.v2_datamodels import InferenceRequest

from contract.errors import ServiceError, install_rest_handlers, method_not_allowed


class DataPlane(kserve_dataplane.DataPlane):
    def decode_inference_request(self, body, headers, model_name):
        """KServe's V2 decoding, with JSON sent without a JSON content type accepted.

        FastAPI hands the V2 body over as bytes unless the content type says JSON, and
        KServe then insists on the binary-extension header. Clients such as
        tritonclient.http send plain JSON with no content type at all.
        """
        if isinstance(body, bytes) and INFERENCE_CONTENT_LENGTH_HEADER not in headers:
            try:
                body = InferenceRequest.model_validate_json(body)
            except pydantic.ValidationError as exc:
                raise RequestValidationError(exc.errors()) from None
        try:
            return super().decode_inference_request(body, headers, model_name)
        except (InvalidInput, ServiceError):
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # KServe indexes the JSON header unchecked
            raise ServiceError(
                "invalid_request", f"The binary V2 request's JSON header is malformed ({type(exc).__name__}: {exc})."
            ) from None


class RESTServer(kserve_rest.RESTServer):
    def _register_endpoints(self, app: FastAPI) -> None:
        # Registered before KServe's routes so that these answer first: KServe's V2
        # metadata drops our parameters, and its V1 `GET /v1/models/{name}` would
        # otherwise take `GET /v1/models/x:predict` for a model named "x:predict".
        app.add_api_route("/v2/models/{model_name}", self._model_metadata, methods=["GET"])
        for verb in ("predict", "explain"):
            app.add_api_route(
                f"/v1/models/{{model_name}}:{verb}", method_not_allowed, methods=["GET", "PUT", "DELETE", "PATCH"]
            )
        super()._register_endpoints(app)

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        install_rest_handlers(app)

    async def _model_metadata(self, model_name: str) -> dict:
        """V2 model metadata plus the model's own ``parameters`` (label order, revision).

        The V2 metadata schema has no field for label names, and KServe's response model
        drops unknown keys, hence this route.
        """
        metadata = await self.dataplane.model_metadata(model_name)
        model = self.dataplane.get_model_from_registry(model_name)
        describe = getattr(model, "metadata_parameters", None)
        if describe is not None:
            metadata["parameters"] = describe()
            metadata["versions"] = [metadata["parameters"]["model_version"]]
        return metadata


class RESTServerMultiProcess(kserve_multiprocess.RESTServerMultiProcess):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # KServe builds its own RESTServer here; ours adds no state, only overrides.
        self._rest_server.__class__ = RESTServer


class ModelServer(kserve.ModelServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dataplane = DataPlane(model_registry=self.registered_models)

    def start(self, models: List[BaseKServeModel]) -> None:
        """``kserve.ModelServer.start`` (kserve 0.21.0) with this module's REST servers."""
        self._register_and_check_atleast_one_model_is_ready(models)
        rest_options = dict(
            access_log_format=self.access_log_format,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
        )
        app = FASTAPI_APP_IMPORT_STRING
        if self.workers > 1:
            self._rest_multiprocess_server = RESTServerMultiProcess(
                app, self.dataplane, self.model_repository_extension, self.http_port, **rest_options
            )
            self.servers.append(self._rest_multiprocess_server.start())
        else:
            self._rest_server = RESTServer(
                app, self.dataplane, self.model_repository_extension, self.http_port, **rest_options
            )
            self.servers.append(self._rest_server.start())
        if self.enable_grpc:
            self._grpc_server = GRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs=vars(kserve.model_server.args),
                grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())
