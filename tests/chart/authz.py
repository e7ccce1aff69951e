"""Istio 1.27's AuthorizationPolicy decision for one request, over rendered policies.

The order is Istio's (pilot/pkg/security/authz/builder/builder.go, Build: the DENY filter
comes before the ALLOW filter in the HTTP chain): a matching DENY policy refuses; a workload
with ALLOW policies is refused unless one of them matches; without any it is allowed. Hosts
match exactly or with one ``*`` at an end, ignoring case (authz/matcher/header.go,
HostMatcher); a missing principal (plain HTTP, no mTLS) matches no ``principals`` but does
match every ``notPrincipals``. Only the fields the chart uses are read; any other field fails
here, so a new one gets its semantics written down before a test relies on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KNOWN_SOURCE = {"principals", "notPrincipals", "namespaces", "notRequestPrincipals"}
KNOWN_OPERATION = {"hosts", "ports", "paths", "notPaths"}


@dataclass(frozen=True)
class Workload:
    namespace: str
    labels: dict


@dataclass(frozen=True)
class Request:
    principal: str | None  # None: plain text, or no sidecar on the caller
    host: str
    port: int = 8080
    path: str = "/v2/models/sentiment/infer"
    headers: dict = field(default_factory=dict)
    request_principal: str | None = None  # from a validated JWT

    @property
    def namespace(self) -> str | None:
        # cluster.local/ns/<ns>/sa/<sa>: Istio's source.namespace comes from the peer certificate
        return self.principal.split("/")[2] if self.principal else None


def _value_matches(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    pattern, value = pattern.lower(), value.lower()
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _any(patterns, value) -> bool:
    return any(_value_matches(p, value) for p in patterns)


def _source_matches(source: dict, request: Request) -> bool:
    unknown = set(source) - KNOWN_SOURCE
    assert not unknown, f"authz.py does not model source fields {unknown}"
    if "principals" in source and not _any(source["principals"], request.principal):
        return False
    if "notPrincipals" in source and _any(source["notPrincipals"], request.principal):
        return False
    if "namespaces" in source and not _any(source["namespaces"], request.namespace):
        return False
    if "notRequestPrincipals" in source and _any(source["notRequestPrincipals"], request.request_principal):
        return False
    return True


def _operation_matches(operation: dict, request: Request) -> bool:
    unknown = set(operation) - KNOWN_OPERATION
    assert not unknown, f"authz.py does not model operation fields {unknown}"
    if "hosts" in operation and not _any(operation["hosts"], request.host):
        return False
    if "ports" in operation and str(request.port) not in operation["ports"]:
        return False
    if "paths" in operation and not _any(operation["paths"], request.path):
        return False
    if "notPaths" in operation and _any(operation["notPaths"], request.path):
        return False
    return True


def _condition_matches(condition: dict, request: Request) -> bool:
    key = condition["key"]
    assert key.startswith("request.headers[") and key.endswith("]"), f"authz.py does not model {key}"
    assert set(condition) <= {"key", "values", "notValues"}, condition
    header = key[len("request.headers["):-1].lower()
    value = {k.lower(): v for k, v in request.headers.items()}.get(header)
    # a missing header matches no values and every notValues (the generated matcher is a negation)
    if "values" in condition and not _any(condition["values"], value):
        return False
    if "notValues" in condition and _any(condition["notValues"], value):
        return False
    return True


def _rule_matches(rule: dict, request: Request) -> bool:
    # within a rule: from AND to AND when; within each list: any entry
    if "from" in rule and not any(_source_matches(f["source"], request) for f in rule["from"]):
        return False
    if "to" in rule and not any(_operation_matches(t["operation"], request) for t in rule["to"]):
        return False
    if "when" in rule and not all(_condition_matches(c, request) for c in rule["when"]):
        return False
    return True


def _applies(policy: dict, workload: Workload) -> bool:
    if policy["metadata"]["namespace"] != workload.namespace:
        return False
    wanted = policy["spec"].get("selector", {}).get("matchLabels", {})
    return all(workload.labels.get(k) == v for k, v in wanted.items())


def allowed(policies: list[dict], workload: Workload, request: Request) -> bool:
    """Whether ``workload``'s sidecar lets ``request`` in, under the AuthorizationPolicies given."""
    mine = [p for p in policies if _applies(p, workload)]
    for policy in mine:
        if policy["spec"].get("action", "ALLOW") == "DENY":
            if any(_rule_matches(rule, request) for rule in policy["spec"].get("rules", [])):
                return False
    allows = [p for p in mine if p["spec"].get("action", "ALLOW") == "ALLOW"]
    if not allows:
        return True
    return any(_rule_matches(rule, request) for p in allows for rule in p["spec"].get("rules", []))
