"""V1 :explain and V2 explanations on the real predictor and through the real transformer (tiny model, fp32)."""

import asyncio
import json
import uuid

import httpx
import numpy as np
import pytest
from kserve.inference_client import InferenceGRPCClient
from kserve.protocol.infer_type import InferInput, InferRequest

from tests.integration.servers import ServerProcess, metric
from tests.integration.test_transformer import transformer_for

pytestmark = pytest.mark.integration

EXPLAIN = "/v1/models/sentiment:explain"
PREDICT = "/v1/models/sentiment:predict"


@pytest.fixture(scope="module")
def transformer(predictor, redis, tmp_path_factory):
    # A generous cache deadline: this module tests what is cached, not the 20 ms fail-open (test_faults does).
    server = transformer_for(predictor, redis, tmp_path_factory.mktemp("logs") / "transformer.log",
                             "--cache_timeout_ms", "1000").start()
    yield server
    server.stop()


def explain(server, texts, **parameters):
    body = {"instances": texts, **({"parameters": parameters} if parameters else {})}
    return httpx.post(f"{server.url}{EXPLAIN}", json=body, timeout=60)


def scores(server, texts) -> list[dict]:
    response = httpx.post(f"{server.url}{PREDICT}", json={"instances": texts}, timeout=60)
    assert response.status_code == 200, response.text
    return [{s["label"]: s["score"] for s in p["scores"]} for p in response.json()["predictions"]]


def unique(n: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"the {run} film number {i} was {'great' if i % 2 else 'dull'} and long" for i in range(n)]


def test_each_contribution_is_what_deleting_the_word_does_to_predict(predictor):
    texts = ["a gorgeous , witty , seductive movie .", "the plot is nowhere near as clever as it thinks"]
    response = explain(predictor, texts)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"predictions", "explanations"} and len(body["explanations"]) == 2
    assert body["predictions"] == httpx.post(f"{predictor.url}{PREDICT}", json={"instances": texts}).json()[
        "predictions"]  # the explained input of a short text is the text itself
    for text, answer in zip(texts, body["explanations"]):
        assert answer["method"] == "occlusion" and answer["granularity"] == "word" and not answer["truncated"]
        words = text.split()
        assert [a["text"] for a in answer["attributions"]] == words
        # The claim an explanation makes, checked against the model: delete the word, ask :predict.
        without = [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]
        measured = [answer["score"] - s[answer["label"]] for s in scores(predictor, without)]
        np.testing.assert_allclose([a["contribution"] for a in answer["attributions"]], measured, atol=1e-5)


def test_tokens_on_request_and_long_texts_say_they_were_cut(predictor):
    long_text = " ".join(f"word{i}" for i in range(100))
    body = explain(predictor, ["unbelievably dull", long_text], granularity="token").json()
    short, long_ = body["explanations"]
    assert short["granularity"] == "token" and [a["text"] for a in short["attributions"]][:2] == ["un", "bel"]  # the characters, not "##bel"
    assert long_["truncated"] and long_["words"] == 100 and len(long_["attributions"]) == 64
    words = explain(predictor, [long_text]).json()["explanations"][0]
    assert words["truncated"] and words["explained_words"] == 64 and words["attributions"][-1]["text"] == "word63"


def test_v2_rest_and_grpc_carry_the_explanation_as_a_bytes_output(predictor):
    text = "an engrossing and moving portrait"
    v1 = explain(predictor, [text]).json()["explanations"][0]
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}],
            "parameters": {"explain": True}}
    rest = httpx.post(f"{predictor.url}/v2/models/sentiment/infer", json=body, timeout=30).json()
    outputs = {o["name"]: o for o in rest["outputs"]}
    assert set(outputs) == {"label", "score", "scores", "explanation"}
    assert json.loads(outputs["explanation"]["data"][0]) == v1

    async def grpc_call():
        client = InferenceGRPCClient(predictor.grpc_target, timeout=30)
        request = InferRequest("sentiment", [InferInput("text", [1], "BYTES", [text])], parameters={"explain": True})
        try:
            return await client.infer(request)
        finally:
            await client.close()

    response = asyncio.run(grpc_call())
    raw = response.get_output_by_name("explanation").as_numpy()[0]
    assert json.loads(raw) == v1


def test_explain_has_predicts_limits_and_error_table(predictor):
    wrong = explain(predictor, ["fine"], granularity="character")
    assert wrong.status_code == 400 and wrong.json()["error_type"] == "invalid_parameter"
    null = httpx.post(f"{predictor.url}{EXPLAIN}", json={"instances": [None]}, timeout=10)
    assert null.status_code == 400 and null.json()["error_type"] == "invalid_request"
    many = httpx.post(f"{predictor.url}{EXPLAIN}", json={"instances": ["x"] * 1001}, timeout=10)
    assert many.status_code == 400 and many.json()["error_type"] == "too_many_texts"
    # 64 variants + 1 per text: 70 long texts need 4,550 rows, over --max_request_rows (4,096) too; the
    # explanation's own limit (--max_explain_rows, 260) names itself
    costly = explain(predictor, [" ".join(["word"] * 80)] * 70)
    assert costly.status_code == 413 and costly.json()["error_type"] == "request_too_large"
    assert "--max_explain_rows" in costly.json()["error"]
    assert httpx.get(f"{predictor.url}{EXPLAIN}", timeout=10).json()["error_type"] == "method_not_allowed"
    assert "content-type" in (r := explain(predictor, ["ok"])).headers and r.headers["content-type"].startswith(
        "application/json")  # not the request's own content type reflected back (KServe's explain did that)


def test_the_transformer_caches_explanations_per_text_and_granularity(transformer, predictor):
    texts = unique(3)
    first = explain(transformer, texts)
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    assert first.json() == explain(predictor, texts).json()
    before = metric(predictor.url, "predictor_texts_total", model_name="sentiment")
    second = explain(transformer, texts)
    assert second.headers["x-cache"] == "hit" and second.json() == first.json()
    assert metric(predictor.url, "predictor_texts_total", model_name="sentiment") == before
    tokens = explain(transformer, texts, granularity="token")
    assert tokens.headers["x-cache"] == "miss" and tokens.json()["explanations"][0]["granularity"] == "token"
    predict = httpx.post(f"{transformer.url}{PREDICT}", json={"instances": texts}, timeout=30)
    assert predict.headers["x-cache"] == "miss"  # a prediction is not an explanation's entry
    v2 = httpx.post(f"{transformer.url}/v2/models/sentiment/infer", timeout=30, json={
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": texts}], "parameters": {"explain": True}})
    assert v2.headers["x-cache"] == "hit"
    got = [json.loads(e) for e in {o["name"]: o for o in v2.json()["outputs"]}["explanation"]["data"]]
    assert got == first.json()["explanations"]


def test_turned_off_is_a_501_on_both_services(tiny_model_dir, redis, tmp_path):
    off = ServerProcess("predictor", ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir),
                                      "--explain", "false"], tmp_path / "predictor.log").start()
    front = transformer_for(off, redis, tmp_path / "transformer.log", "--explain", "false").start()
    try:
        for server in (off, front):
            response = explain(server, ["anything"])
            assert response.status_code == 501 and response.json()["error_type"] == "not_implemented"
            assert "--explain false" in response.json()["error"]
            assert httpx.post(f"{server.url}{PREDICT}", json={"instances": ["ok"]}).status_code == 200
    finally:
        front.stop()
        off.stop()


def test_through_a_grpc_transformer_the_answers_are_the_same(predictor, redis, tmp_path):
    front = transformer_for(predictor, redis, tmp_path / "transformer.log", "--cache_timeout_ms", "1000",
                            protocol="grpc-v2").start()
    try:
        texts = unique(2)
        got = explain(front, texts)
        assert got.status_code == 200 and got.headers["x-cache"] == "miss"
        assert got.json() == explain(predictor, texts).json()
        assert explain(front, texts).headers["x-cache"] == "hit"
    finally:
        front.stop()


def test_explain_takes_a_much_smaller_row_limit_than_predict(predictor, transformer):
    """Issue 26, item 3: 63 texts of 64 words are ~4,096 rows from a 36 KB body. :explain allows 260 rows
    (four such texts), a fast 413 beyond, from the predictor and through the transformer; :predict of the
    same texts is one row each and is answered. The limit is on what the model computes: the transformer
    sends only its cache misses, so each server gets texts of its own."""
    for server in (predictor, transformer):
        run = uuid.uuid4().hex[:4]
        words = [" ".join(f"{run}w{t}x{w}" for w in range(64)) for t in range(63)]
        fits = explain(server, words[:4])  # 4 x 65 = 260 rows: the limit exactly
        assert fits.status_code == 200, fits.text
        over = explain(server, words[4:9])  # 325 rows (texts not yet cached)
        assert over.status_code == 413 and over.json()["error_type"] == "request_too_large", over.text
        assert "--max_explain_rows" in over.json()["error"]
        storm = explain(server, words)  # the storm's request: refused before any text is tokenized
        assert storm.status_code == 413 and storm.json()["error_type"] == "request_too_large"
        assert storm.elapsed.total_seconds() < 5  # generous: a busy machine; the work it refuses is seconds
        predict = httpx.post(f"{server.url}{PREDICT}", json={"instances": words}, timeout=60)
        assert predict.status_code == 200 and len(predict.json()["predictions"]) == 63
