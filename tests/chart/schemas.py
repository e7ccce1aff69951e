"""Validate Kubernetes objects: custom resources against the real CRD schemas, core ones with kubernetes-validate.

The API server prunes fields a CRD's schema does not declare, so a typo in an
InferenceService would be silently dropped on a cluster. Here every object schema
that does not preserve unknown fields gets ``additionalProperties: false``: a
misspelt field fails the test instead.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

CRD_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "crds"
KUBERNETES_VERSION = "1.33"


def _strict(schema):
    """Reject unknown fields wherever the CRD would prune them (its structural-schema semantics)."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ) and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        if schema.get("x-kubernetes-int-or-string"):
            schema.pop("type", None)
            schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@lru_cache(maxsize=1)
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the strict openAPIV3Schema, for every CRD under ../shared/crds."""
    schemas = {}
    for path in sorted(CRD_DIR.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if schema:
                    strict = _strict(copy.deepcopy(schema))
                    # every object has these; the API server validates them, not the CRD schema
                    strict.setdefault("properties", {}).update(
                        apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"}
                    )
                    schemas[(f"{group}/{version['name']}", kind)] = strict
    return schemas


# ../shared/crds has no Prometheus Operator CRDs, so PodMonitor and PrometheusRule are
# checked against these hand-written subsets of their monitoring.coreos.com/v1 schemas:
# the fields the chart uses, with their types, and nothing else (an unknown or misspelt
# field fails, as with the real CRDs above). Real CRD files dropped into ../shared/crds
# take precedence.
_STRINGS = {"type": "array", "items": {"type": "string"}}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_LABEL_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": _STRING_MAP,
    "matchExpressions": {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "required": ["key", "operator"],
        "properties": {"key": {"type": "string"}, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                       "values": _STRINGS}}},
}}
_RELABEL = {"type": "object", "additionalProperties": False, "properties": {
    "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
    "separator": {"type": "string"}, "targetLabel": {"type": "string"}, "regex": {"type": "string"},
    "modulus": {"type": "integer"}, "replacement": {"type": "string"},
    "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap",
                        "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase",
                        "uppercase", "Uppercase", "keepequal", "KeepEqual", "dropequal", "DropEqual"]},
}}
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
                                          "(([0-9]+)ms)?)$"}
_OBJECT_META = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
MONITORING_SCHEMAS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): {
        "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": _OBJECT_META, "spec": {
            "type": "object", "additionalProperties": False, "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "namespaceSelector": {"type": "object", "additionalProperties": False,
                                      "properties": {"any": {"type": "boolean"}, "matchNames": _STRINGS}},
                "selector": _LABEL_SELECTOR,
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "properties": {
                        "port": {"type": "string"}, "portNumber": {"type": "integer"},
                        "targetPort": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "path": {"type": "string"}, "scheme": {"enum": ["http", "https"]},
                        "interval": _DURATION, "scrapeTimeout": _DURATION, "honorLabels": {"type": "boolean"},
                        "relabelings": {"type": "array", "items": _RELABEL},
                        "metricRelabelings": {"type": "array", "items": _RELABEL},
                    }}},
            }}},
    },
    ("monitoring.coreos.com/v1", "PrometheusRule"): {
        "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": _OBJECT_META, "spec": {
            "type": "object", "additionalProperties": False, "properties": {"groups": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["name"], "properties": {
                    "name": {"type": "string", "minLength": 1}, "interval": _DURATION,
                    "rules": {"type": "array", "items": {
                        "type": "object", "additionalProperties": False, "required": ["expr"], "properties": {
                            "alert": {"type": "string"}, "record": {"type": "string"},
                            "expr": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                            "for": _DURATION, "keep_firing_for": _DURATION,
                            "labels": _STRING_MAP, "annotations": _STRING_MAP,
                        }}},
                }}}}}},
    },
}


def validate(obj: dict) -> None:
    """Raise with a readable message if ``obj`` is not a valid object of its kind."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    schema = crd_schemas().get(key) or MONITORING_SCHEMAS.get(key)
    if schema is not None:
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            raise AssertionError(f"{key} {obj['metadata'].get('name')}: " + "; ".join(
                f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:5]))
        return
    if "." in obj["apiVersion"].split("/")[0] and not obj["apiVersion"].startswith(("networking.k8s.io", "rbac.")):
        raise AssertionError(f"no CRD schema for {key}: cannot validate it")
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(f"{key} {obj['metadata'].get('name')}: {exc.message} at {list(exc.path)}") from None
