"""The classifier on tiny models: activation per problem type, truncation, label order, chunking."""

import shutil

import numpy as np
import pytest

from predictor.backends import CPU_BACKENDS as BACKENDS
from predictor.classifier import CALL_OVERHEAD_TOKENS, TextClassifier
from tests.reference import hf_probs, served_classifier

TEXTS = ["I love this film", "this is terrible", "", "   ", "12345", "😀🎉", "a much longer sentence " * 20]


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    return served_classifier(tiny_model_dir)


def test_single_label_probabilities_are_a_softmax(classifier):
    probs = classifier.classify(TEXTS)
    assert probs.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_multi_label_probabilities_are_independent_sigmoids(tiny_multilabel_dir):
    probs = served_classifier(tiny_multilabel_dir, backend="torch").classify(TEXTS)
    np.testing.assert_allclose(probs, hf_probs(tiny_multilabel_dir, TEXTS, multi_label=True), rtol=1e-4, atol=1e-6)
    assert not np.allclose(probs.sum(axis=1), 1.0)


# How far each backend may stray from transformers' own answer on the same weights:
# fp32 graphs only reorder float sums; int8 weights move scores by a few hundredths.
TOLERANCE = {"torch": 1e-5, "onnx": 1e-4, "torch-int8": 0.05, "onnx-int8": 0.05}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_matches_transformers(backend, tiny_model_dir):
    probs = served_classifier(tiny_model_dir, backend=backend).classify(TEXTS)  # graphs: the session's one export
    np.testing.assert_allclose(probs, hf_probs(tiny_model_dir, TEXTS), atol=TOLERANCE[backend])


def test_token_ids_equal_the_transformers_tokenizer(classifier, tiny_model_dir):
    from transformers import AutoTokenizer

    texts = [*TEXTS, "Ünïcödé ÀÉÎ naïve café", "tab\tand\nnewline", "<b>html</b> & entities", "word " * 600]
    expected = AutoTokenizer.from_pretrained(tiny_model_dir)(texts, truncation=True, max_length=512)["input_ids"]
    assert classifier.token_ids(texts) == expected


def test_labels_follow_id2label_order(tiny_multilabel_dir):
    assert served_classifier(tiny_multilabel_dir).labels == ["sadness", "joy", "love", "anger", "fear", "surprise"]


def test_text_is_truncated_at_max_length(tiny_model_dir):
    classifier = served_classifier(tiny_model_dir, max_length=8)
    prefix = "one two three four five six seven eight nine ten"
    a, b = classifier.classify([prefix + " wonderful", prefix + " awful awful awful"])
    np.testing.assert_allclose(a, b, rtol=1e-6)  # the words past 8 tokens are never seen
    untruncated = served_classifier(tiny_model_dir, max_length=64).classify([prefix + " wonderful", prefix + " awful"])
    assert not np.allclose(untruncated[0], untruncated[1])


def test_max_length_is_capped_by_the_model_positions(short_context_dir):
    classifier = served_classifier(short_context_dir, max_length=512)
    assert classifier.max_length == 16
    probs = classifier.classify(["word " * 10_000])  # far past 16 positions: truncated, not an index error
    assert probs.shape == (1, 2)


# int8 activations are quantized with one scale per forward pass, so a text's scores
# move slightly with its batch mates; fp32 answers are the same however texts are batched.
BATCH_MATE_DRIFT = {"onnx": 1e-6, "onnx-int8": 0.02}


@pytest.mark.parametrize("backend", BATCH_MATE_DRIFT)
def test_chunked_batches_equal_one_by_one(backend, tiny_model_dir):
    chunked = served_classifier(tiny_model_dir, max_batch_tokens=32, backend=backend)
    together = chunked.classify(TEXTS)
    alone = np.vstack([chunked.classify([text]) for text in TEXTS])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=BATCH_MATE_DRIFT[backend])


def _planner(max_batch_tokens: int) -> TextClassifier:
    planner = TextClassifier.__new__(TextClassifier)
    planner.max_batch_tokens = max_batch_tokens
    return planner


def _cost(chunks, lengths) -> int:
    return sum(CALL_OVERHEAD_TOKENS + len(chunk) * max(lengths[i] for i in chunk) for chunk in chunks)


def test_chunks_respect_the_token_budget():
    lengths = [10, 10, 10, 40, 40, 50]
    chunks = _planner(100)._chunks(range(6), lengths)
    assert [i for chunk in chunks for i in chunk] == list(range(6))
    for chunk in chunks:
        assert max(lengths[i] for i in chunk) * len(chunk) <= 100


def test_chunks_are_the_cheapest_split():
    """Against every way to cut a sorted batch: the planner's split costs least."""
    from itertools import combinations

    lengths = [5, 6, 6, 9, 30, 31, 33, 120]
    planned = _cost(_planner(10_000)._chunks(range(8), lengths), lengths)
    every_split = (
        [list(range(a, b)) for a, b in zip((0, *cuts), (*cuts, 8))]
        for k in range(8) for cuts in combinations(range(1, 8), k)
    )
    assert planned == min(_cost(split, lengths) for split in every_split)
    assert [7] in _planner(10_000)._chunks(range(8), lengths)  # the long outlier runs alone


def test_empty_batch(classifier):
    assert classifier.classify([]).shape == (0, 2)


def test_a_model_without_tokenizer_json_gets_the_same_token_ids(classifier, tiny_model_dir, tmp_path):
    """As older hub models ship it: vocab.txt and tokenizer_config.json, no tokenizer.json."""
    slow_only = tmp_path / "slow-only"
    shutil.copytree(tiny_model_dir, slow_only)
    vocab = classifier.tokenizer.get_vocab()
    (slow_only / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.__getitem__)) + "\n")
    (slow_only / "tokenizer.json").unlink()
    converted = served_classifier(slow_only, backend="onnx", cache_dir=tmp_path / "cache")
    assert converted.token_ids(TEXTS) == classifier.token_ids(TEXTS)


def test_onnx_serving_path_imports_neither_torch_nor_transformers(tiny_model_dir, tmp_path):
    """Cold start: the ONNX backends' serving process must not pay for torch's and transformers' imports."""
    import subprocess
    import sys

    from modelbuild.export import export_onnx
    from modelbuild.layout import ONNX_DIR

    baked = tmp_path / "baked"
    shutil.copytree(tiny_model_dir, baked)
    export_onnx(baked, baked / ONNX_DIR)  # as the image build does
    script = (
        "import sys\nfrom pathlib import Path\nimport runtime.server\n"
        "from predictor.model import PredictorModel\nfrom predictor.settings import PredictorSettings\n"
        f"model = PredictorModel('m', PredictorSettings(model_dir=Path({str(baked)!r}), model_version='v'))\n"
        "assert model.load()\nprint(sorted(n for n in ('torch', 'transformers') if n in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
