"""V1 REST, V2 REST and V2 gRPC against the real predictor, with clients nobody here wrote."""

import asyncio
import json
import time

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest

from tests.integration.servers import HTTP, ServerProcess, triton_grpc_infer

pytestmark = pytest.mark.integration

TEXTS = ["I love this movie", "This was a waste of time", "", "   ", "12345", "😀🎉", "naïve café"]
LABELS = ["NEGATIVE", "POSITIVE"]


def v1_predict(predictor, texts):
    response = HTTP.post(f"{predictor.url}/v1/models/sentiment:predict", json={"instances": texts}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def v1_scores(predictions):
    """V1 lists scores best first; reorder them into label order to compare with V2."""
    return np.array([[{s["label"]: s["score"] for s in p["scores"]}[label] for label in LABELS] for p in predictions])


def test_v1_rest_returns_every_label_with_its_score(predictor):
    predictions = v1_predict(predictor, TEXTS)
    assert len(predictions) == len(TEXTS)
    for prediction in predictions:
        assert sorted(s["label"] for s in prediction["scores"]) == LABELS
        assert prediction["label"] == prediction["scores"][0]["label"]
        assert prediction["score"] == prediction["scores"][0]["score"]
        assert sum(s["score"] for s in prediction["scores"]) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_v2_rest_with_tritonclient_http(predictor, binary):
    expected = v1_scores(v1_predict(predictor, TEXTS))
    client = triton_http.InferenceServerClient(f"127.0.0.1:{predictor.http_port}")
    text = triton_http.InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(np.array(TEXTS, dtype=object), binary_data=binary)
    outputs = [triton_http.InferRequestedOutput(name, binary_data=binary) for name in ("label", "score", "scores")]
    result = client.infer("sentiment", [text], outputs=outputs)
    np.testing.assert_allclose(result.as_numpy("scores"), expected, rtol=1e-5)
    labels = [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label")]
    assert labels == [LABELS[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(result.as_numpy("score"), expected.max(axis=1), rtol=1e-5)


def test_v2_grpc_with_tritonclient_grpc(predictor):
    expected = v1_scores(v1_predict(predictor, TEXTS))
    result = triton_grpc_infer(predictor.grpc_target, "sentiment", TEXTS)
    np.testing.assert_allclose(result["scores"], expected, rtol=1e-5)
    assert result["label"] == [LABELS[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(result["score"], expected.max(axis=1), rtol=1e-5)
    assert json.loads(result["labels_parameter"]) == LABELS
    assert result["model_ready"]


def test_v2_rest_with_kserve_inference_rest_client(predictor):
    expected = v1_scores(v1_predict(predictor, TEXTS))

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        request = InferRequest("sentiment", [InferInput("text", [len(TEXTS)], "BYTES", TEXTS)], request_id="abc")
        try:
            return await client.infer(predictor.url, request, model_name="sentiment")
        finally:
            await client.close()

    response = asyncio.run(call())
    assert response.id == "abc"
    scores = np.array(response.get_output_by_name("scores").data, dtype=np.float32).reshape(len(TEXTS), 2)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_metadata_publishes_label_order_and_health(predictor):
    metadata = HTTP.get(f"{predictor.url}/v2/models/sentiment").json()
    assert metadata["parameters"]["labels"] == LABELS
    assert {o["name"]: o["shape"] for o in metadata["outputs"]} == {"label": [-1], "score": [-1], "scores": [-1, 2]}
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/sentiment/ready", "/v1/models/sentiment"):
        assert HTTP.get(predictor.url + path).status_code == 200, path
    client = triton_http.InferenceServerClient(f"127.0.0.1:{predictor.http_port}")
    assert client.get_model_metadata("sentiment")["name"] == "sentiment"


def test_batched_request_equals_texts_sent_one_by_one(predictor):
    sentences = [f"sentence number {i} is {'great' if i % 2 else 'awful'} " * (1 + i % 7) for i in range(24)]
    together = v1_scores(v1_predict(predictor, sentences))

    async def one_by_one():
        async with httpx.AsyncClient(base_url=predictor.url, timeout=30) as client:
            responses = await asyncio.gather(
                *(client.post("/v1/models/sentiment:predict", json={"instances": [s]}) for s in sentences)
            )
        return [r.json()["predictions"][0] for r in responses]

    alone = v1_scores(asyncio.run(one_by_one()))  # concurrent, so the batcher groups them differently
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_several_uvicorn_workers_serve_the_same_answers(tiny_model_dir, tmp_path, predictor):
    """--workers 2: KServe forks REST workers; each rebuilds its batcher and keeps the error table."""
    server = ServerProcess(
        "predictor", ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir), "--workers", "2",
                      "--backend", "onnx"],  # as the `predictor` fixture: answers comparable exactly
        tmp_path / "workers.log",
    ).start()
    try:
        for _ in range(4):
            np.testing.assert_allclose(v1_scores(v1_predict(server, TEXTS)), v1_scores(v1_predict(predictor, TEXTS)),
                                       rtol=1e-5)
        bad = HTTP.post(f"{server.url}/v1/models/sentiment:predict", json={"instances": [None]})
        assert bad.status_code == 400 and bad.json()["error_type"] == "invalid_request"
        workers = [p for p in server.descendants() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2
    finally:
        server.stop()
    deadline = time.monotonic() + 10  # the workers exit a moment after the parent (longer on a loaded machine)
    while time.monotonic() < deadline and [p for p in workers if alive(p)]:
        time.sleep(0.1)
    assert not [p for p in workers if alive(p)]  # SIGTERM reaps the workers


def alive(process) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
