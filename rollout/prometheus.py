"""The smallest client of the Prometheus HTTP API the verdict needs: instant queries, as (labels, value) rows.

Standard library only, so the verdict runs in a CI job or a pod without the serving
stack's dependencies. https://prometheus.io/docs/prometheus/latest/querying/api/
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request


class PrometheusError(RuntimeError):
    """Prometheus could not be asked or refused the query: no verdict can be given."""


class Prometheus:
    def __init__(self, url: str, timeout_s: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """``GET /api/v1/query``: one row per series of the instant vector (NaN values left out)."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout_s) as reply:
                body = json.load(reply)
        except urllib.error.HTTPError as exc:  # 400/422: a bad query; the body says why
            raise PrometheusError(f"{self.url} refused {expr!r}: {exc.read()[:500].decode('utf-8', 'replace')}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise PrometheusError(f"Prometheus at {self.url} is not reachable: {exc}") from None
        if body.get("status") != "success" or body["data"]["resultType"] != "vector":
            raise PrometheusError(f"{self.url} answered {str(body)[:500]} to {expr!r}")
        rows = [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]
        return [(labels, value) for labels, value in rows if not math.isnan(value)]
