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


def validate(obj: dict) -> None:
    """Raise with a readable message if ``obj`` is not a valid object of its kind."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    schema = crd_schemas().get(key)
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
