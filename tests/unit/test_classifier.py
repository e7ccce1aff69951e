"""The classifier on tiny models: activation per problem type, truncation, label order, chunking."""

import numpy as np
import pytest
import torch

from predictor.classifier import TextClassifier

TEXTS = ["I love this film", "this is terrible", "", "   ", "12345", "😀🎉", "a much longer sentence " * 20]


@pytest.fixture(scope="module")
def classifier(tiny_model_dir):
    return TextClassifier(tiny_model_dir)


def test_single_label_probabilities_are_a_softmax(classifier):
    probs = classifier.classify(TEXTS)
    assert probs.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_multi_label_probabilities_are_independent_sigmoids(tiny_multilabel_dir):
    classifier = TextClassifier(tiny_multilabel_dir)
    probs = classifier.classify(TEXTS)
    with torch.no_grad():
        batch = classifier.tokenizer(TEXTS[:1], return_tensors="pt")
        expected = torch.sigmoid(classifier.model(**batch).logits).numpy()
    np.testing.assert_allclose(probs[:1], expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(probs.sum(axis=1), 1.0)


def test_labels_follow_id2label_order(tiny_multilabel_dir):
    assert TextClassifier(tiny_multilabel_dir).labels == ["sadness", "joy", "love", "anger", "fear", "surprise"]


def test_text_is_truncated_at_max_length(tiny_model_dir):
    classifier = TextClassifier(tiny_model_dir, max_length=8)
    prefix = "one two three four five six seven eight nine ten"
    a, b = classifier.classify([prefix + " wonderful", prefix + " awful awful awful"])
    np.testing.assert_allclose(a, b, rtol=1e-6)  # the words past 8 tokens are never seen
    untruncated = TextClassifier(tiny_model_dir, max_length=64).classify([prefix + " wonderful", prefix + " awful"])
    assert not np.allclose(untruncated[0], untruncated[1])


def test_max_length_is_capped_by_the_model_positions(short_context_dir):
    classifier = TextClassifier(short_context_dir, max_length=512)
    assert classifier.max_length == 16
    probs = classifier.classify(["word " * 10_000])  # far past 16 positions: truncated, not an index error
    assert probs.shape == (1, 2)


def test_chunked_batches_equal_one_by_one(tiny_model_dir):
    chunked = TextClassifier(tiny_model_dir, max_batch_tokens=32)  # forces many small chunks
    together = chunked.classify(TEXTS)
    alone = np.vstack([chunked.classify([text]) for text in TEXTS])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_chunks_respect_the_token_budget(classifier):
    classifier_budget = TextClassifier.__new__(TextClassifier)
    classifier_budget.max_batch_tokens = 100
    lengths = [10, 10, 10, 40, 40, 50]
    chunks = classifier_budget._chunks(range(6), lengths)
    assert [i for chunk in chunks for i in chunk] == list(range(6))
    for chunk in chunks:
        assert max(lengths[i] for i in chunk) * len(chunk) <= 100


def test_empty_batch(classifier):
    assert classifier.classify([]).shape == (0, 2)
