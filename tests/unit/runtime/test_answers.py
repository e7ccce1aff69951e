"""The per-version answer metrics: label counts and the bulk confidence histogram equal one-by-one observation."""

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from runtime import answers


def samples(histogram) -> dict:
    return {(s.name, s.labels.get("le")): s.value for metric in histogram.collect() for s in metric.samples
            if not s.name.endswith("_created")}


def test_bulk_observation_equals_observe_one_by_one():
    values = np.array([0.2, 0.5, 0.5000001, 0.55, 0.9, 1.0, 0.999, 0.0, 0.31, 0.95])
    one, bulk = (Histogram(name, "x", buckets=answers.CONFIDENCE_BUCKETS, registry=CollectorRegistry())
                 for name in ("one", "bulk"))
    for value in values:
        one.observe(value)
    answers.observe_many(bulk, values)
    assert {k[1:]: v for k, v in samples(one).items()} == {k[1:]: v for k, v in samples(bulk).items()}
    assert samples(bulk)[("bulk_count", None)] == len(values)


def value(name: str, **labels) -> float:
    for metric in answers.ANSWERS.collect() + answers.CONFIDENCE.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_top_labels_and_confidence_are_counted_per_version():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
    answers.observe("unit", "v1", ["NEG", "POS"], probs)
    answers.observe("unit", "v2", ["NEG", "POS"], probs[:1])
    answers.observe("unit", "v2", ["NEG", "POS"], probs[:0])  # nothing answered: nothing counted
    assert value("text_classifier_answers_total", model_name="unit", model_version="v1", label="NEG") == 2
    assert value("text_classifier_answers_total", model_name="unit", model_version="v1", label="POS") == 2
    assert value("text_classifier_answers_total", model_name="unit", model_version="v2", label="NEG") == 1
    assert value("text_classifier_answer_confidence_count", model_name="unit", model_version="v1") == 4
    assert abs(value("text_classifier_answer_confidence_sum", model_name="unit", model_version="v1") - 3.0) < 1e-6
    assert value("text_classifier_answer_confidence_bucket", model_name="unit", model_version="v1", le="0.7") == 2
