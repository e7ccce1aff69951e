"""Every setting of both services reaches its pods: the values blocks (predictor.settings, transformer.settings)
render to the prefixed env vars the code reads, the chart's own keys and per-model values reach the rest,
extraEnv comes last, and values that put the two deadlines in the wrong order are refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from predictor.settings import PredictorSettings
from runtime.settings import env_var, parse
from tests.chart.helm import CHART, by_kind, helm, rejection, render, template_args
from transformer.settings import TransformerSettings

pytestmark = pytest.mark.chart

_spec = importlib.util.spec_from_file_location("chart_settings", CHART.parents[1] / "scripts" / "chart_settings.py")
chart_settings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chart_settings)
SERVICES = {"predictor": PredictorSettings, "transformer": TransformerSettings}


def containers(isvc: dict) -> dict[str, dict]:
    """The predictor's and the transformer's container of an InferenceService (split or collocated)."""
    spec = isvc["spec"]
    found = {"predictor": spec["predictor"]["containers"][0]}
    if "transformer" in spec:
        found["transformer"] = spec["transformer"]["containers"][0]
    for container in spec["predictor"]["containers"][1:]:
        if container["name"] == "transformer-container":
            found["transformer"] = container
    return found


def other_than_default(field):
    """A value of the field's type that is not its default (what the rendering must carry through)."""
    default = chart_settings.default_value(field)
    schema, _ = chart_settings._types(field.annotation)
    if "enum" in schema:
        return next(choice for choice in schema["enum"] if choice != default)
    kind = schema["type"]
    if kind == "boolean":
        return not default
    if kind == "integer":
        return (default or 0) + 7
    if kind == "number":
        return (default or 0) + 0.5
    return "/var/cache/elsewhere"


def test_every_declared_setting_is_in_a_values_block_a_key_of_its_own_or_set_by_the_chart():
    for service, cls in SERVICES.items():
        block = chart_settings.block_fields(service).keys()
        dedicated, owned = chart_settings.DEDICATED[service].keys(), chart_settings.CHART_OWNED[service].keys()
        assert not (block & dedicated) and not (block & owned) and not (dedicated & owned)
        assert set(block) | dedicated | owned == set(cls.model_fields), service


def test_every_block_setting_renders_to_the_env_var_the_code_reads(tmp_path, monkeypatch):
    chosen = {service: {name: other_than_default(field) for name, field in chart_settings.block_fields(service).items()}
              for service in SERVICES}
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({service: {"settings": settings} for service, settings in chosen.items()}))
    isvc = next(o for o in by_kind(render(values), "InferenceService") if o["metadata"]["name"] == "sentiment")
    for service, container in containers(isvc).items():
        cls = SERVICES[service]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        for name in chosen[service]:
            assert chart_settings.env_name(service, name) in env, (service, name)
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            settings, _ = parse(cls, service, None, [])
        for name, value in chosen[service].items():
            read = getattr(settings, name)
            assert (str(read) if isinstance(read, Path) else read) == value, (service, name)


def _passed(objects: list[dict]) -> dict[str, set[str]]:
    """Per service: the env var names and --flag names its containers get."""
    passed = {service: set() for service in SERVICES}
    for isvc in by_kind(objects, "InferenceService"):
        for service, container in containers(isvc).items():
            passed[service] |= {e["name"] for e in container.get("env", [])}
            passed[service] |= {arg.split("=")[0] for arg in container.get("args", [])}
    return passed


def test_the_settings_with_a_key_of_their_own_or_set_by_the_chart_are_passed():
    # Split layout: KServe appends --predictor_host itself (collocated sets it); a null maxBatchSize is the
    # backend's own (gpu-values sets one).
    scenarios = [render(CHART / "ci" / name, *sets) for name, *sets in [
        ("canary-values.yaml",), ("shadow-values.yaml",), ("collocated-values.yaml",),
        ("security-values.yaml",), ("redis-cluster-values.yaml",), ("gpu-values.yaml",)]]
    passed = {service: set().union(*(_passed(objects)[service] for objects in scenarios)) for service in SERVICES}
    for service, cls in SERVICES.items():
        for name in {**chart_settings.DEDICATED[service], **chart_settings.CHART_OWNED[service]}:
            env = env_var(name, cls.model_fields[name])
            names = {f"--{name}", env, cls.env_prefix_name + env}
            assert names & passed[service], (service, name)


def test_every_setting_the_chart_passes_as_an_env_var_has_the_services_prefix():
    for name in ("canary-values.yaml", "shadow-values.yaml", "collocated-values.yaml", "security-values.yaml",
                 "redis-cluster-values.yaml"):
        for isvc in by_kind(render(CHART / "ci" / name), "InferenceService"):
            for service, container in containers(isvc).items():
                cls = SERVICES[service]
                plain = {env_var(setting, field) for setting, field in cls.model_fields.items()}
                # REDIS_URL and the canary's pin come from a Secret and an annotation (valueFrom), hand-written
                unprefixed = {e["name"] for e in container["env"] if e["name"] in plain} - {"REDIS_URL",
                                                                                           "CACHE_MODEL_VERSION"}
                assert unprefixed == set(), (name, service)


def test_extra_env_comes_after_the_generated_env_and_wins():
    objects = render(CHART / "ci" / "settings-values.yaml")
    isvc = next(o for o in by_kind(objects, "InferenceService") if o["metadata"]["name"] == "sentiment")
    found = containers(isvc)
    names = [e["name"] for e in found["predictor"]["env"]]
    assert names[-2:] == ["OTEL_RESOURCE_ATTRIBUTES", "POD_NAME"]
    assert found["predictor"]["env"][-1]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    env = found["transformer"]["env"]
    reset = [e["value"] for e in env if e["name"] == "TRANSFORMER_CACHE_RESET_S"]
    assert reset == ["1", "2.5"] and env[-1]["name"] == "TRANSFORMER_CACHE_RESET_S"  # the last of a name wins


@pytest.mark.parametrize(("sets", "message"), [
    (["transformer.predictorTimeoutSeconds=10"], "predictorTimeoutSeconds (10) must exceed predictor.requestTimeoutSeconds (10)"),
    (["predictor.requestTimeoutSeconds=200", "transformer.timeout=300"], "must exceed predictor.requestTimeoutSeconds (200)"),
    (["predictor.settings.log_format=xml"], "log_format"),
    (["transformer.settings.no_such_setting=1"], "no_such_setting"),
])
def test_values_in_the_wrong_order_or_unknown_are_refused(sets, message):
    assert message in rejection(*sets)


def test_the_deadlines_in_order_render():
    helm(*template_args(None, "predictor.requestTimeoutSeconds=149", "transformer.predictorTimeoutSeconds=150"))
