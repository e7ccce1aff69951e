"""The bundled models, served by the real predictor with no --model_dir, hold their model cards' accuracy:
within one standard error of the test-slice figure the card claims (training.record.holds)."""

import json

import pytest

from modelbuild.layout import BUNDLED_DIR
from tests.conftest import SHARED
from tests.integration.servers import HTTP, ServerProcess
from training.evaluate import holdout_slices, validation_slices
from training.record import holds, standard_error

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (SHARED / "data").is_dir(), reason=f"{SHARED}/data is absent: the labelled data lives there"),
]


def card(name: str) -> dict:
    return json.loads((BUNDLED_DIR / name / "training.json").read_text())


@pytest.fixture(scope="module")
def serve_bundled(tmp_path_factory):
    servers = {}

    def start(name: str) -> ServerProcess:
        if name not in servers:
            tmp = tmp_path_factory.mktemp(name)
            # The session's model cache: the merge and the export are shared with test_backends.
            servers[name] = ServerProcess("predictor", ["--model_name", name], tmp / "server.log").start(
                ready_timeout_s=240)
        return servers[name]

    yield start
    for server in servers.values():
        server.stop()


def predict(server: ServerProcess, name: str, texts: list[str]) -> list[str]:
    labels = []
    for start in range(0, len(texts), 100):
        response = HTTP.post(f"{server.url}/v1/models/{name}:predict", json={"instances": texts[start : start + 100]},
                              timeout=120)
        assert response.status_code == 200, response.text
        labels += [p["label"] for p in response.json()["predictions"]]
    return labels


def served_accuracy(server, name, examples) -> float:
    names = card(name)["labels"]
    predicted = predict(server, name, [e.text for e in examples])
    return sum(p == names[e.label] for p, e in zip(predicted, examples)) / len(examples)


def assert_card_holds(name: str, accuracy: float, rows: int):
    claim = card(name)["ci_sample"]
    assert rows == claim["rows"]
    assert holds(claim["accuracy"], rows, accuracy), (
        f"{name}: served {accuracy:.4f}, the card claims {claim['accuracy']:.4f} ± "
        f"{standard_error(claim['accuracy'], rows):.4f} on these {rows} rows")


def test_sentiment_accuracy_on_held_out_whole_sentences(serve_bundled):
    _, examples = holdout_slices(BUNDLED_DIR / "sentiment", SHARED / "data/sst2/train.tsv")
    assert len(examples) == card("sentiment")["validation_examples"]
    assert all(e.text.rstrip()[-1] in ".!?" and len(e.text.split()) >= 5 for e in examples)
    accuracy = served_accuracy(serve_bundled("sentiment"), "sentiment", examples)
    assert_card_holds("sentiment", accuracy, len(examples))


def test_emotion_accuracy_on_held_out_validation_rows(serve_bundled):
    _, examples = validation_slices(BUNDLED_DIR / "emotion", SHARED / "data/emotion/validation.csv")
    assert len(examples) == card("emotion")["validation_examples"]
    accuracy = served_accuracy(serve_bundled("emotion"), "emotion", examples)
    assert_card_holds("emotion", accuracy, len(examples))


@pytest.mark.parametrize("name", ["sentiment", "emotion"])
def test_scores_carry_the_fitted_temperature(serve_bundled, name):
    """The served probabilities are softmax(logits / T) with the card's T, not the raw softmax."""
    from training.data import Example
    from training.evaluate import logits_of
    from training.quality import softmax

    temperature = json.loads((BUNDLED_DIR / name / "config.json").read_text())["temperature"]
    assert temperature == card(name)["evaluation"]["calibration"]["temperature"] and temperature != 1.0
    text = "it is fine i guess , though not what i hoped for"
    logits, _ = logits_of(BUNDLED_DIR / name, [Example(text, 0)], backend="onnx-int8")
    response = HTTP.post(f"{serve_bundled(name).url}/v1/models/{name}:predict", json={"instances": [text]}, timeout=60)
    served = {s["label"]: s["score"] for s in response.json()["predictions"][0]["scores"]}
    labels = card(name)["labels"]
    expected, raw = softmax(logits, temperature)[0], softmax(logits)[0]
    assert [served[label] for label in labels] == pytest.approx(list(expected), abs=0.01)
    assert max(abs(expected - raw)) > 0.01  # the check can tell a scaled softmax from a raw one


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
