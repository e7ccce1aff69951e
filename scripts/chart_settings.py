"""The chart's settings blocks, written from the settings declarations: ``python scripts/chart_settings.py``.

Every setting of both services (predictor/settings.py, transformer/settings.py, and what they share from
runtime/settings.py) reaches the pods in one of three ways:

- a values key of its own the chart already had (``DEDICATED``): the chart's templates use it for more than
  the setting (ports follow ``transformer.predictorProtocol``, ``answers.*`` sets both services alike), so
  it keeps its name; the templates hand it to the same helper by setting name (a few are flags instead:
  ``--request_timeout_s``, ``--backend``, ...);
- set by the chart per model (``CHART_OWNED``): the model's name, its files, its version, the hosts;
- everything else: a key of ``predictor.settings`` / ``transformer.settings``, named as the setting and
  defaulting to the code's default, which ``tc.settingsEnv`` (templates/_helpers.tpl) renders into the
  service's prefixed env var (``PREDICTOR_MAX_TEXTS``, ``TRANSFORMER_FAST_PATH``). null is the code's own
  default (one computed at start, or none).

This script writes those two blocks (values.yaml, between the ``BEGIN settings`` / ``END settings``
markers), their schema (values.schema.json) and their rows in the chart's README; ``--check`` exits 1
when a committed file differs from what it would write (tests/unit/test_chart_settings.py runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from predictor.settings import PredictorSettings  # noqa: E402
from runtime.settings import ServiceSettings, env_var  # noqa: E402
from transformer.settings import TransformerSettings  # noqa: E402

CHART = ROOT / "charts" / "text-classifier"
SERVICES: dict[str, type[ServiceSettings]] = {"predictor": PredictorSettings, "transformer": TransformerSettings}

# setting -> the values key the chart passes it from (``models.<name>``: that model's own key).
DEDICATED: dict[str, dict[str, str]] = {
    "predictor": {
        "shutdown_drain_s": "predictor.drainSeconds",
        "max_batch_size": "predictor.maxBatchSize",
        "request_timeout_s": "predictor.requestTimeoutSeconds",
        "backend": "predictor.backend",
        "threads": "predictor.threads",
        "truncation": "answers.truncation",
        "max_windows": "answers.maxWindows",
        "max_request_rows": "answers.maxRequestRows",
        "explain": "answers.explain",
        "explain_max_words": "answers.explainMaxWords",
    },
    "transformer": {
        "shutdown_drain_s": "transformer.drainSeconds",
        "predictor_protocol": "transformer.predictorProtocol",
        "predictor_request_timeout_seconds": "transformer.predictorTimeoutSeconds",
        "redis_cluster": "redis.external.cluster",
        "cache_ttl_s": "transformer.cacheTtlSeconds",
        "cache_timeout_ms": "transformer.cacheTimeoutMs",
        "cache_headers": "transformer.cacheHeaders",
        "rate_limit_rps": "transformer.rateLimit.rps",
        "rate_limit_burst": "transformer.rateLimit.burst",
        "rate_limit_key": "transformer.rateLimit.key",
        "shadow_percent": "models.<name>.shadow.percent",
        "shadow_max_in_flight": "transformer.shadow.maxInFlight",
        "shadow_timeout_ms": "transformer.shadow.timeoutMs",
        "truncation": "answers.truncation",
        "explain": "answers.explain",
    },
}
# setting -> why the chart sets it and no value does.
CHART_OWNED: dict[str, dict[str, str]] = {
    "predictor": {
        "model_name": "the model's name (models.<name>) is its route",
        "model_dir": "the files baked into the image, or /mnt/models with a storageUri",
        "model_version": "models.<name>.modelVersion (or the canary's, the shadow's)",
    },
    "transformer": {
        "model_name": "the model's name (models.<name>) is its route",
        "predictor_host": "KServe's (the predictor's Service), or localhost when collocated",
        "redis_url": "from the Redis Secret (redis.*)",
        "cache_key_secret": "from the cache key Secret (transformer.cacheKey.*), never a value in the pod spec",
        "cache_key_release": "the release's name: releases sharing one Redis never share entries",
        "cache_model_version": "the canary's pin, from the InferenceService's annotation",
        "shadow_predictor_host": "the shadow InferenceService's Service (models.<name>.shadow)",
    },
}

BEGIN, END = "# BEGIN settings of {service} (scripts/chart_settings.py)", "# END settings of {service}"
README_BEGIN, README_END = "<!-- BEGIN settings of {service} (scripts/chart_settings.py) -->", \
    "<!-- END settings of {service} -->"


def block_fields(service: str) -> dict:
    """The settings of ``service`` that its values block holds, in declaration order."""
    skip = DEDICATED[service].keys() | CHART_OWNED[service].keys()
    return {name: field for name, field in SERVICES[service].model_fields.items() if name not in skip}


def env_name(service: str, name: str) -> str:
    """The env var the chart sets for a block setting: the service's prefix and the setting's own env var."""
    return SERVICES[service].env_prefix_name + env_var(name, SERVICES[service].model_fields[name])


def default_value(field):
    """The values.yaml default: the code's, or null where the code computes one at start (a factory)."""
    if field.default_factory is not None:
        return None
    value = field.default
    return str(value) if isinstance(value, Path) else value


def _types(annotation) -> tuple[dict, bool]:
    """The JSON schema of a setting's type, and whether it admits null."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return {"enum": list(args)}, False
    if type(None) in args:
        schema, _ = _types(next(a for a in args if a is not type(None)))
        return schema, True
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "string"}[annotation]
    return {"type": kind}, False


def schema_of(service: str) -> dict:
    properties = {}
    for name, field in block_fields(service).items():
        schema, nullable = _types(field.annotation)
        if nullable or default_value(field) is None:
            schema = {"type": [schema["type"], "null"]} if "type" in schema else {"enum": [*schema["enum"], None]}
        properties[name] = schema
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _yaml_scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def values_block(service: str) -> str:
    cls = SERVICES[service]
    lines = [f"  {BEGIN.format(service=service)}",
             f"  # Every other setting of {cls.__module__.replace('.', '/')}.py, passed as {cls.env_prefix_name}<ENV VAR>; null: the code's default.",
             "  settings:"]
    for name, field in block_fields(service).items():
        lines.append(f"    ## @param {service}.settings.{name} {_plain(field.description)} ({env_name(service, name)})")
        lines.append(f"    {name}: {_yaml_scalar(default_value(field))}")
    lines.append(f"  {END.format(service=service)}")
    return "\n".join(lines)


def _plain(text: str) -> str:
    return " ".join(text.split())


def readme_rows(service: str) -> str:
    rows = [README_BEGIN.format(service=service), "", "| key | description |", "|---|---|"]
    rows += [f"| `{service}.settings.{name}` | {_plain(field.description)} ({env_name(service, name)}) |"
             for name, field in block_fields(service).items()]
    return "\n".join([*rows, "", README_END.format(service=service)])


def _between(text: str, begin: str, end: str, new: str, path: Path) -> str:
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < 0:
        raise SystemExit(f"{path}: no {begin!r} ... {end!r} markers")
    line_start = text.rfind("\n", 0, start) + 1
    return text[:line_start] + new + text[stop + len(end):]


def outputs() -> dict[Path, str]:
    """Each file this script writes, as it would write it."""
    values_path, readme_path, schema_path = CHART / "values.yaml", CHART / "README.md", CHART / "values.schema.json"
    values, readme = values_path.read_text(), readme_path.read_text()
    schema = json.loads(schema_path.read_text())
    for service in SERVICES:
        values = _between(values, BEGIN.format(service=service), END.format(service=service),
                          values_block(service), values_path)
        readme = _between(readme, README_BEGIN.format(service=service), README_END.format(service=service),
                          readme_rows(service), readme_path)
        schema["properties"][service]["properties"]["settings"] = schema_of(service)
    return {values_path: values, readme_path: readme, schema_path: json.dumps(schema, indent=2) + "\n"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is not up to date")
    args = parser.parse_args()
    stale = [path for path, text in outputs().items() if path.read_text() != text]
    if args.check:
        if stale:
            sys.exit(f"not up to date (run python scripts/chart_settings.py): {', '.join(map(str, stale))}")
        return
    for path, text in outputs().items():
        if path in stale:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
