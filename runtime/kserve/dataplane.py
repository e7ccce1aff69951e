"""KServe's data plane with our drain, our explain, and V2 JSON accepted without a JSON content type."""

from __future__ import annotations

import pydantic
from fastapi.exceptions import RequestValidationError
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.model import InferenceVerb
from kserve.protocol import dataplane as kserve_dataplane
from kserve.protocol.rest.v2_datamodels import InferenceRequest

from contract.errors import ErrorType, ServiceError
from contract.schema import has_lone_surrogate_escape, unparsable_body
from runtime import shutdown
from runtime.face import TextClassificationModel


def version_or_lookup_error(dataplane: kserve_dataplane.DataPlane, model_name: str) -> str | None:
    model = dataplane.model_registry.get_model(model_name)
    if model is None:
        raise LookupError(model_name)
    return model.model_version if isinstance(model, TextClassificationModel) else None


class DataPlane(kserve_dataplane.DataPlane):
    async def ready(self) -> bool:
        """Not ready once shutting down (runtime/shutdown.py); inference goes on meanwhile. Nor while a model
        says it is not ready: KServe's server readiness (DataPlane.ready, kserve 0.21) never looks at the
        models, and the pods' probe is this one (a transformer that refuses to serve: transformer/model.py)."""
        models = self.model_registry.get_models().values()
        return not shutdown.draining() and all(model.ready for model in models) and await super().ready()

    async def model_ready(self, model_name: str, disable_predictor_health_check: bool = False) -> bool:
        # KServe's inference routes call this with disable_predictor_health_check=True: those
        # must keep answering during the drain; only the readiness endpoints (False) flip.
        if shutdown.draining() and not disable_predictor_health_check:
            self.get_model_from_registry(model_name)  # an unknown model is still a 404
            return False
        return await super().model_ready(model_name, disable_predictor_health_check)

    async def explain(self, model_name: str, request, headers: dict | None = None):
        """KServe's explain (kserve 0.21.0) returns the request's headers as the response's, the request's
        content-type included; here only the model's own response headers are returned."""
        model = await self.get_model(model_name)
        return await model(request, verb=InferenceVerb.EXPLAIN, headers=headers)

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
                if has_lone_surrogate_escape(body):  # valid JSON that pydantic's parser refuses: 400 invalid_text
                    raise unparsable_body(body, "") from None
                raise RequestValidationError(exc.errors()) from None
        try:
            return super().decode_inference_request(body, headers, model_name)
        except (InvalidInput, ServiceError):
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # KServe indexes the JSON header unchecked
            raise ServiceError(
                ErrorType.INVALID_REQUEST,
                f"The binary V2 request's JSON header is malformed ({type(exc).__name__}: {exc})."
            ) from None
