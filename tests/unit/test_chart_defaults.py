"""The chart's values.yaml defaults are the code's: a default changed in one place and not the other fails here.

Each row names a value of charts/text-classifier/values.yaml and the setting (runtime/settings.py declarations)
the chart passes it to. Values the chart sets differently on purpose are listed apart, with the reason.
"""

import pytest
import yaml

from predictor.settings import PredictorSettings
from tests.unit.test_imports import ROOT
from transformer.settings import TransformerSettings

VALUES = yaml.safe_load((ROOT / "charts" / "text-classifier" / "values.yaml").read_text())

SAME = [
    ("predictor.requestTimeoutSeconds", PredictorSettings, "request_timeout_s"),
    ("predictor.maxBatchSize", PredictorSettings, "max_batch_size"),
    ("predictor.backend", PredictorSettings, "backend"),
    ("predictor.threads", PredictorSettings, "threads"),
    ("answers.explain", PredictorSettings, "explain"),
    ("answers.explain", TransformerSettings, "explain"),
    ("answers.explainMaxWords", PredictorSettings, "explain_max_words"),
    ("answers.truncation", PredictorSettings, "truncation"),
    ("answers.truncation", TransformerSettings, "truncation"),
    ("answers.maxWindows", PredictorSettings, "max_windows"),
    ("answers.maxRequestRows", PredictorSettings, "max_request_rows"),
    ("transformer.predictorProtocol", TransformerSettings, "predictor_protocol"),
    ("transformer.cacheTtlSeconds", TransformerSettings, "cache_ttl_s"),
    ("transformer.cacheTimeoutMs", TransformerSettings, "cache_timeout_ms"),
]
# On a cluster a pod gets SIGTERM while it is still in the Service's endpoints: the chart drains 5 s
# (docs/operations.md, "Graceful shutdown"); `make serve` and the tests stop at once.
DIFFERENT_ON_PURPOSE = [
    ("predictor.drainSeconds", PredictorSettings, "shutdown_drain_s"),
    ("transformer.drainSeconds", TransformerSettings, "shutdown_drain_s"),
]


def value(path: str):
    node = VALUES
    for key in path.split("."):
        node = node[key]
    return node


@pytest.mark.parametrize(("path", "cls", "field"), SAME, ids=[f"{p}-{c.__name__}" for p, c, _ in SAME])
def test_values_yaml_default_is_the_code_default(path, cls, field):
    assert value(path) == cls.model_fields[field].default


@pytest.mark.parametrize(("path", "cls", "field"), DIFFERENT_ON_PURPOSE, ids=[p for p, _, _ in DIFFERENT_ON_PURPOSE])
def test_the_chart_drains_where_a_local_run_does_not(path, cls, field):
    assert value(path) > cls.model_fields[field].default == 0
