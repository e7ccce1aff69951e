"""`truncation` on the real predictor and through the real transformer: a tiny model with 16 positions.

With 14 content tokens per row, a sentence of twenty words is long: every strategy
is exercised in milliseconds. Whether the strategies find what they should on real
text is tests/integration/test_bundled_explain_truncation.py's job.
"""

import asyncio
import uuid

import httpx
import numpy as np
import pytest
from kserve.inference_client import InferenceGRPCClient
from kserve.protocol.infer_type import InferInput, InferRequest

from tests.integration.servers import ServerProcess, metric
from tests.integration.test_transformer import transformer_for

pytestmark = pytest.mark.integration

PREDICT = "/v1/models/short:predict"
# 80 words of one token each: a window's tokens are exactly its words, so a test can rebuild it as text.
WORDS = ("the film is a good and bad story of love with great music but poor acting from every young actor").split()
LONG = " ".join(WORDS * 4)
WINDOWS = 1 + -(-(len(WORDS) * 4 - 14) // 10)  # windows of 14 content tokens, stride 14 - 4
SHORT = "fine"


@pytest.fixture(scope="module")
def short_predictor(short_context_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "predictor.log"
    server = ServerProcess("predictor", ["--model_name", "short", "--model_dir", str(short_context_dir), "--backend",
                                         "onnx", "--window_overlap", "4", "--max_windows", "12"], log).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def short_transformer(short_predictor, redis, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "transformer.log"
    # A generous cache deadline: this module tests what is cached, not the 20 ms fail-open (test_faults does).
    server = transformer_for(short_predictor, redis, log, "--cache_timeout_ms", "1000", name="short").start()
    yield server
    server.stop()


def predict(server, texts, truncation=None):
    body = {"instances": texts, **({"parameters": {"truncation": truncation}} if truncation else {})}
    return httpx.post(f"{server.url}{PREDICT}", json=body, timeout=60)


def test_strategies_agree_on_a_text_that_fits_and_differ_on_one_that_does_not(short_predictor):
    answers = {t: predict(short_predictor, [SHORT, LONG], t).json()["predictions"] for t in ("head", "head_tail", "chunks")}
    assert answers["head"] == predict(short_predictor, [SHORT, LONG]).json()["predictions"]  # head is the default
    for strategy in ("head_tail", "chunks"):
        assert answers[strategy][0]["score"] == pytest.approx(answers["head"][0]["score"], abs=1e-6)
        assert answers[strategy][1]["scores"] != answers["head"][1]["scores"]
    assert [p["windows"] for p in answers["chunks"]] == [1, WINDOWS]
    assert "windows" not in answers["head"][0]


def test_chunks_are_the_token_weighted_mean_of_their_windows(short_predictor, short_context_dir):
    from predictor.classifier import load_tokenizer

    words = LONG.split()
    tokenizer = load_tokenizer(short_context_dir)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    assert len(tokenizer.encode(LONG, add_special_tokens=False).ids) == len(words)
    windows = [(s, min(s + 14, len(words))) for s in range(0, len(words) - 4, 10)]
    assert len(windows) == WINDOWS
    texts = [" ".join(words[s:e]) for s, e in windows]  # each window as a text of its own, scored by head
    per_window = np.array([[s["score"] for s in sorted(p["scores"], key=lambda x: x["label"])]
                           for p in predict(short_predictor, texts).json()["predictions"]])
    weights = np.array([e - s for s, e in windows], dtype=np.float64)
    expected = (per_window * weights[:, None]).sum(0) / weights.sum()
    chunks = predict(short_predictor, [LONG], "chunks").json()["predictions"][0]
    got = [s["score"] for s in sorted(chunks["scores"], key=lambda x: x["label"])]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_bounds_are_400_and_413_from_the_error_table(short_predictor):
    too_long = predict(short_predictor, [SHORT, " ".join(["word"] * 400)], "chunks")
    assert too_long.status_code == 400 and too_long.json()["error_type"] == "too_many_windows"
    assert "instances[1]" in too_long.json()["error"] and "--max_windows" in too_long.json()["error"]
    costly = predict(short_predictor, [LONG] * (4096 // WINDOWS + 1), "chunks")  # one text more than 4096 rows hold
    assert costly.status_code == 413 and costly.json()["error_type"] == "request_too_large"
    wrong = predict(short_predictor, [SHORT], "middle")
    assert wrong.status_code == 400 and wrong.json()["error_type"] == "invalid_parameter"
    assert "head, head_tail, chunks" in wrong.json()["error"]


def test_v2_rest_and_grpc_take_the_parameter_and_report_windows(short_predictor):
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": [SHORT, LONG]}],
            "parameters": {"truncation": "chunks"}}
    rest = httpx.post(f"{short_predictor.url}/v2/models/short/infer", json=body, timeout=30).json()
    outputs = {o["name"]: o for o in rest["outputs"]}
    assert outputs["windows"] == {"name": "windows", "shape": [2], "datatype": "INT32", "parameters": None,
                                  "data": [1, WINDOWS]}

    async def grpc_call(parameters):
        client = InferenceGRPCClient(short_predictor.grpc_target, timeout=30)
        request = InferRequest("short", [InferInput("text", [2], "BYTES", [SHORT, LONG])], parameters=parameters)
        try:
            return await client.infer(request)
        finally:
            await client.close()

    grpc = asyncio.run(grpc_call({"truncation": "chunks"}))
    assert grpc.get_output_by_name("windows").as_numpy().tolist() == [1, WINDOWS]
    np.testing.assert_allclose(grpc.get_output_by_name("scores").as_numpy().reshape(-1),
                               outputs["scores"]["data"], atol=1e-6)
    head_tail = asyncio.run(grpc_call({"truncation": "head_tail"}))
    assert head_tail.get_output_by_name("windows") is None


def test_the_transformer_caches_each_strategy_apart(short_transformer, short_predictor):
    text = f"{uuid.uuid4().hex} " + LONG
    seen = {}
    for strategy in ("head", "head_tail", "chunks"):
        first = predict(short_transformer, [text], strategy)
        assert first.status_code == 200 and first.headers["x-cache"] == "miss", strategy
        seen[strategy] = first.json()["predictions"][0]
    before = metric(short_predictor.url, "predictor_texts_total", model_name="short")
    for strategy in ("head", "head_tail", "chunks"):
        again = predict(short_transformer, [text], strategy)
        assert again.headers["x-cache"] == "hit" and again.json()["predictions"][0] == seen[strategy]
    assert metric(short_predictor.url, "predictor_texts_total", model_name="short") == before
    assert seen["chunks"]["windows"] == predict(short_predictor, [text], "chunks").json()["predictions"][0]["windows"]
    error = predict(short_transformer, [" ".join(["word"] * 400)], "chunks")  # the predictor's 400, passed through
    assert error.status_code == 400 and error.json()["error_type"] == "too_many_windows"


def test_the_servers_default_applies_when_a_request_does_not_choose(short_context_dir, redis, tmp_path):
    server = ServerProcess("predictor", ["--model_name", "short", "--model_dir", str(short_context_dir), "--backend",
                                         "onnx", "--truncation", "chunks", "--window_overlap", "4",
                                         "--max_windows", "12"], tmp_path / "predictor.log").start()
    front = transformer_for(server, redis, tmp_path / "transformer.log", "--truncation", "chunks",
                            name="short").start()
    try:
        for target in (server, front):
            default = predict(target, [LONG]).json()["predictions"][0]
            assert default["windows"] == WINDOWS
            assert predict(target, [LONG], "head").json()["predictions"][0].get("windows") is None
    finally:
        front.stop()
        server.stop()


def test_chunks_through_a_grpc_transformer(short_predictor, redis, tmp_path):
    front = transformer_for(short_predictor, redis, tmp_path / "transformer.log", "--cache_timeout_ms", "1000",
                            name="short", protocol="grpc-v2").start()
    try:
        text = f"{uuid.uuid4().hex} " + LONG
        got = predict(front, [text], "chunks")
        assert got.status_code == 200 and got.headers["x-cache"] == "miss"
        direct = predict(short_predictor, [text], "chunks").json()["predictions"][0]
        assert got.json()["predictions"][0]["windows"] == direct["windows"]
        np.testing.assert_allclose(got.json()["predictions"][0]["score"], direct["score"], atol=1e-6)
    finally:
        front.stop()
