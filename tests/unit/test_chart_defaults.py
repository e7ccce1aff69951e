"""The chart's values.yaml defaults are the code's: a default changed in one place and not the other fails here.

Every setting (runtime/settings.py declarations) reaches the chart one of three ways (scripts/chart_settings.py):
a key of the values block ``predictor.settings`` / ``transformer.settings`` (written from the declarations;
a test below fails when the committed block, schema or README rows are stale), a key of its own the chart
already had (``DEDICATED``), or set by the chart per model (``CHART_OWNED``). Values the chart sets differently
on purpose are listed apart, with the reason. tests/chart/test_settings_env.py renders them.
"""

import importlib.util

import pytest
import yaml

from predictor.settings import PredictorSettings
from tests.unit.test_imports import ROOT
from transformer.settings import TransformerSettings

VALUES = yaml.safe_load((ROOT / "charts" / "text-classifier" / "values.yaml").read_text())
_spec = importlib.util.spec_from_file_location("chart_settings", ROOT / "scripts" / "chart_settings.py")
chart_settings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chart_settings)
SERVICES = {"predictor": PredictorSettings, "transformer": TransformerSettings}

# On a cluster a pod gets SIGTERM while it is still in the Service's endpoints: the chart drains 5 s
# (docs/operations.md, "Graceful shutdown"); `make serve` and the tests stop at once.
DIFFERENT_ON_PURPOSE = {
    ("predictor", "shutdown_drain_s"): "drains on a cluster",
    ("transformer", "shutdown_drain_s"): "drains on a cluster",
    # long enough for a predictor cold start on a new node (node scale-up, image pull, model load)
    ("transformer", "predictor_request_timeout_seconds"): "waits out a cold start",
    # rateLimit.enabled (false) turns the limit on; these are what it then is (code: 0, off)
    ("transformer", "rate_limit_rps"): "only with rateLimit.enabled",
    ("transformer", "rate_limit_burst"): "only with rateLimit.enabled",
    ("transformer", "rate_limit_key"): "only with rateLimit.enabled",
}
SAME = [(service, name, path) for service, dedicated in chart_settings.DEDICATED.items()
        for name, path in dedicated.items() if (service, name) not in DIFFERENT_ON_PURPOSE]


def value(path: str):
    node = VALUES
    for key in path.split("."):
        node = node[key]
    return node


def paths(path: str) -> list[str]:
    """A values path; ``models.<name>`` stands for every model's."""
    return [path.replace("<name>", name) for name in VALUES["models"]] if "<name>" in path else [path]


@pytest.mark.parametrize(("service", "name", "path"), SAME, ids=[f"{p}-{s}" for s, _, p in SAME])
def test_values_yaml_default_is_the_code_default(service, name, path):
    for each in paths(path):
        assert value(each) == SERVICES[service].model_fields[name].default


@pytest.mark.parametrize("service", SERVICES)
def test_the_settings_blocks_defaults_are_the_code_defaults(service):
    block = VALUES[service]["settings"]
    fields = chart_settings.block_fields(service)
    assert list(block) == list(fields)
    for name, field in fields.items():
        code = None if field.default_factory is not None else field.default  # null: computed at start
        assert block[name] == (str(code) if code is not None and not isinstance(code, (bool, int, float, str))
                                else code), name


def test_the_generated_blocks_schema_and_readme_rows_are_up_to_date():
    stale = [str(path) for path, text in chart_settings.outputs().items() if path.read_text() != text]
    assert stale == [], "run: python scripts/chart_settings.py"


def test_the_chart_drains_where_a_local_run_does_not():
    for service in SERVICES:
        assert value(f"{service}.drainSeconds") > SERVICES[service].model_fields["shutdown_drain_s"].default == 0


def test_the_charts_deadlines_are_in_the_order_the_transformer_requires():
    from runtime.settings import deadline_order_problem

    assert deadline_order_problem(value("transformer.predictorTimeoutSeconds"),
                                  value("predictor.requestTimeoutSeconds")) is None
