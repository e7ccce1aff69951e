"""Which gateway route a request takes, under Istio 1.27's HTTP route semantics.

Istio translates each VirtualService http route to an Envoy route, in order, the first match
winning (pilot/pkg/networking/core/route/route.go at 1.27.1, TranslateRouteMatch and
translateRoute): `uri.exact` becomes Envoy's `path` match (the path without its query string,
case-sensitive unless ignoreUriCase), `uri.prefix` on a gateway a `path_separated_prefix` (the
prefix without its trailing slash, then the end of the path or a `/`), `uri.regex` a RE2 full
match; `rewrite.uriRegexRewrite` becomes Envoy's regex_rewrite (every match of the pattern in
the path replaced). Only what the chart uses is modelled: a match with anything else (headers,
methods, ports) fails loudly rather than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HANDLED = {"uri", "ignoreUriCase"}


@dataclass(frozen=True)
class Routed:
    route: str  # the http route's name
    path: str  # the path (and query) the destination receives
    authority: str | None  # the Host the destination receives, when rewritten


def _uri_matches(uri: dict, path: str, ignore_case: bool) -> bool:
    (kind, value), = uri.items()
    if ignore_case:
        path, value = path.lower(), value.lower()
    if kind == "exact":
        return path == value
    if kind == "prefix":
        stem = value.rstrip("/")
        return value == "/" or path == stem or path.startswith(stem + "/")
    if kind == "regex":
        return re.fullmatch(value, path) is not None
    raise AssertionError(f"unmodelled uri match {kind}")


def _match(route: dict, path: str) -> dict | None:
    """The first of the route's matches that ``path`` satisfies (``{}``: a route without matches)."""
    for match in route.get("match") or [{}]:
        assert set(match) <= HANDLED, f"unmodelled match fields {set(match) - HANDLED}"
        if "uri" not in match or _uri_matches(match["uri"], path, match.get("ignoreUriCase", False)):
            return match
    return None


def _rewrite(rewrite: dict, match: dict, path: str) -> str:
    if "uriRegexRewrite" in rewrite:
        spec = rewrite["uriRegexRewrite"]
        return re.sub(spec["match"], spec["rewrite"], path)  # RE2 GlobalReplace; groups as in Python
    if "uri" in rewrite:
        uri, kind = rewrite["uri"], next(iter(match.get("uri") or {"prefix": "/"}))
        if kind == "prefix":
            stem = match["uri"]["prefix"].rstrip("/") if match.get("uri") else ""
            if uri == "/":  # on a gateway, translateRoute's regex_rewrite drops the prefix, keeps one slash
                return re.sub(rf"^{re.escape(stem)}(/?)(.*)", r"/\2", path, count=1)
            return uri + path[len(stem):]  # Envoy prefix_rewrite of a path-separated prefix
        if kind == "exact":
            return uri  # Envoy prefix_rewrite of a `path` match replaces the whole path
        raise AssertionError("a uri rewrite of a regex match is not modelled")
    return path


def route_of(virtual_service: dict, request_path: str) -> Routed | None:
    """The route ``request_path`` (which may carry a query) takes, or None: the gateway's 404."""
    path, _, query = request_path.partition("?")
    for route in virtual_service["spec"]["http"]:
        match = _match(route, path)
        if match is not None:
            rewrite = route.get("rewrite") or {}
            new_path = _rewrite(rewrite, match, path)
            return Routed(route["name"], new_path + (f"?{query}" if query else ""), rewrite.get("authority"))
    return None
