"""The KServe model awaited directly, as KServe's DataPlane calls it (no server)."""

import asyncio

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest

from contract.errors import ServiceError
from predictor.model import PredictorModel
from predictor.settings import PredictorSettings

TEXTS = ["I love this", "I hate this", "😀", "   "]


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    model = PredictorModel("sentiment", PredictorSettings(model_dir=tiny_model_dir))
    assert model.load() and model.ready
    return model


async def test_v1_call_returns_every_label(model):
    response, _ = await model({"instances": TEXTS})
    predictions = response["predictions"]
    assert len(predictions) == len(TEXTS)
    for prediction in predictions:
        assert {s["label"] for s in prediction["scores"]} == {"NEGATIVE", "POSITIVE"}
        assert prediction["label"] == prediction["scores"][0]["label"]
        assert sum(s["score"] for s in prediction["scores"]) == pytest.approx(1.0, rel=1e-5)


async def test_v2_call_matches_v1(model):
    v1, _ = await model({"instances": TEXTS})
    request = InferRequest("sentiment", [InferInput("text", [len(TEXTS)], "BYTES", TEXTS)], request_id="r1")
    v2, _ = await model(request)
    outputs = {o.name: o for o in v2.outputs}
    assert v2.id == "r1" and v2.model_name == "sentiment" and v2.model_version == model.model_version
    assert outputs["label"].data == [p["label"] for p in v1["predictions"]]
    np.testing.assert_allclose(outputs["score"].data, [p["score"] for p in v1["predictions"]], rtol=1e-6)


async def test_bad_input_raises_the_error_table(model):
    with pytest.raises(ServiceError) as caught:
        await model({"instances": [None]})
    assert caught.value.http_status == 400


def test_metadata_publishes_label_order(model):
    assert model.metadata_parameters()["labels"] == ["NEGATIVE", "POSITIVE"]
    assert model.get_output_types()[2] == {"name": "scores", "datatype": "FP32", "shape": [-1, 2]}


def test_metadata_publishes_the_deadline_a_transformer_checks_its_own_against(model):
    assert model.metadata_parameters()["request_timeout_s"] == model.settings.request_timeout_s


async def test_two_inference_sessions_answer_as_one_does(tiny_model_dir, model):
    two = PredictorModel("sentiment", PredictorSettings(model_dir=tiny_model_dir, inference_sessions=2))
    assert two.load() and two.batcher.workers == 2 and len(two.classifier.backend) == 2
    texts = [f"{word} film, take {i}" for i in range(24) for word in ("a fine", "an awful")]

    ones = await asyncio.gather(*(model.batcher.submit([t], timeout_s=30) for t in texts))
    twos = await asyncio.gather(*(two.batcher.submit([t], timeout_s=30) for t in texts))
    # int8 activations are quantized per batch: scores may move by a few thousandths with batch mates
    np.testing.assert_allclose(np.concatenate(twos), np.concatenate(ones), atol=0.02)


def test_zero_inference_sessions_is_refused(tiny_model_dir):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        PredictorSettings(model_dir=tiny_model_dir, inference_sessions=0)
