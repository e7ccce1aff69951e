"""The chart's dashboard and alert rules as data: their queries and the metric names those use.

Shared by the chart tests (the dashboard loads, promtool accepts the rules) and the
integration test that checks every name is exported by the real services. Metric
names are read as PromQL selectors, ``name{...}``: the dashboard and the rules write
every metric with braces, which ``test_every_query_names_its_metrics_with_braces``
checks, so nothing is missed by the parsing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "text-classifier"
DASHBOARD = CHART / "files" / "dashboard.json"
ALERT_RULES = CHART / "files" / "alert-rules.yaml"

SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
HELM_ACTION = re.compile(r"\{\{.*?\}\}")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def query_panels() -> list[dict]:
    """Every panel except rows (rows group panels, they have no query of their own)."""
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_queries() -> list[str]:
    variables = [v["query"]["query"] for v in dashboard()["templating"]["list"] if isinstance(v["query"], dict)]
    return [target["expr"] for panel in query_panels() for target in panel.get("targets", [])] + variables


def rule_queries() -> list[str]:
    """The ``expr`` of every alert, read from the template with its Helm actions blanked out."""
    lines = [line for line in ALERT_RULES.read_text().splitlines() if not line.lstrip().startswith("{{")]
    rules = yaml.safe_load(HELM_ACTION.sub("", "\n".join(lines)))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


# Metrics of the NVIDIA DCGM exporter (cluster/install.sh), the GPU profile's: not exported by our servers.
DCGM_PREFIX = "DCGM_FI_"


def metric_names(queries: list[str]) -> set[str]:
    """The metrics our servers must export for these queries (the DCGM exporter's left out)."""
    return {name for query in queries for name in SELECTOR.findall(HELM_ACTION.sub("", query))
            if not name.startswith(DCGM_PREFIX)}


def recorded_names() -> set[str]:
    """The series the rules record (``record:``): Prometheus makes them, no service exports them."""
    lines = [line for line in ALERT_RULES.read_text().splitlines() if not line.lstrip().startswith("{{")]
    rules = yaml.safe_load(HELM_ACTION.sub("", "\n".join(lines)))
    return {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}


def dashboard_metric_names() -> set[str]:
    """The exported metrics the dashboard reads (recorded series aside: tests/integration/test_cost.py has those)."""
    return metric_names(dashboard_queries()) - recorded_names()


def dashboard_panel(title: str) -> dict:
    (panel,) = [panel for panel in query_panels() if panel["title"] == title]
    return panel


def rule_metric_names() -> set[str]:
    return metric_names(rule_queries()) - recorded_names()
