"""The bundled models, served by the real predictor with no --model_dir, hold their model cards' accuracy."""

import json

import httpx
import pytest

from predictor.data import read_labelled
from predictor.evaluate import holdout_examples
from predictor.layout import BUNDLED_DIR
from tests.conftest import SHARED
from tests.integration.servers import ServerProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (SHARED / "data").is_dir(), reason=f"{SHARED}/data is absent: the labelled data lives there"),
]

EMOTION_SAMPLE_ROWS = 500  # the first rows of validation.csv, as recorded in the emotion model card


def card(name: str) -> dict:
    return json.loads((BUNDLED_DIR / name / "training.json").read_text())


@pytest.fixture(scope="module")
def serve_bundled(tmp_path_factory):
    servers = {}

    def start(name: str) -> ServerProcess:
        if name not in servers:
            tmp = tmp_path_factory.mktemp(name)
            servers[name] = ServerProcess(
                "predictor", ["--model_name", name, "--model_cache_dir", str(tmp / "cache")], tmp / "server.log"
            ).start(ready_timeout_s=180)
        return servers[name]

    yield start
    for server in servers.values():
        server.stop()


def predict(server: ServerProcess, name: str, texts: list[str]) -> list[str]:
    labels = []
    for start in range(0, len(texts), 100):
        response = httpx.post(f"{server.url}/v1/models/{name}:predict", json={"instances": texts[start : start + 100]},
                              timeout=120)
        assert response.status_code == 200, response.text
        labels += [p["label"] for p in response.json()["predictions"]]
    return labels


def served_accuracy(server, name, examples) -> float:
    names = card(name)["labels"]
    predicted = predict(server, name, [e.text for e in examples])
    return sum(p == names[e.label] for p, e in zip(predicted, examples)) / len(examples)


def test_sentiment_accuracy_on_held_out_sentences(serve_bundled):
    examples = holdout_examples(BUNDLED_DIR / "sentiment", SHARED / "data/sst2/train.tsv")
    assert len(examples) == 1000 and all(e.text.rstrip()[-1] in ".!?" for e in examples)
    accuracy = served_accuracy(serve_bundled("sentiment"), "sentiment", examples)
    assert accuracy >= card("sentiment")["validation_accuracy"] - 0.01


def test_emotion_accuracy_on_validation_rows(serve_bundled):
    examples = read_labelled(SHARED / "data/emotion/validation.csv")[:EMOTION_SAMPLE_ROWS]
    accuracy = served_accuracy(serve_bundled("emotion"), "emotion", examples)
    assert accuracy >= card("emotion")["ci_sample"]["accuracy"] - 0.01


@pytest.mark.parametrize(
    "name, text, label",
    [
        ("sentiment", "this is wonderful", "POSITIVE"),
        ("sentiment", "I loved every minute of this film .", "POSITIVE"),
        ("sentiment", "this is the worst movie I have ever seen", "NEGATIVE"),
        ("sentiment", "a boring , pointless mess", "NEGATIVE"),
        ("emotion", "I am so angry right now", "anger"),
        ("emotion", "i feel so happy and grateful today", "joy"),
        ("emotion", "i feel so lonely and sad", "sadness"),
        ("emotion", "i am terrified of what will happen tomorrow", "fear"),
    ],
)
def test_obvious_sentences_get_the_obvious_label(serve_bundled, name, text, label):
    assert predict(serve_bundled(name), name, [text]) == [label]
