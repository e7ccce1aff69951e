"""The chart's dashboard and alerts: the dashboard loads with a query on every panel, promtool accepts
the rules and their unit tests pass, and the monitoring objects render as configured.

That every metric they query is really exported is tests/integration/test_metrics.py.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import BIN, CHART, by_kind, render
from tests.chart.observability import dashboard, dashboard_queries, query_panels, rule_queries

pytestmark = pytest.mark.chart
MONITORING = CHART / "ci" / "monitoring-values.yaml"
RULE_TESTS = Path(__file__).with_name("alert-rules-test.yaml")
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "inf", "nan"}


def promtool() -> str:
    path = BIN / "promtool" if (BIN / "promtool").exists() else shutil.which("promtool")
    if not path:
        pytest.skip("promtool is not installed: `make setup` takes it from Debian's `prometheus` package "
                    "(or `apt-get install prometheus`)")
    return str(path)


def rendered_rules(tmp_path: Path, values: dict | None = None) -> Path:
    values_file = None
    if values:  # a file, not --set: helm's --set reads 0.3 as a string, which the schema refuses
        values_file = tmp_path / "values.yaml"
        values_file.write_text(yaml.safe_dump(values))
    objects = render(values_file, "monitoring.prometheusRule.enabled=true")
    (rule,) = by_kind(objects, "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


def test_the_dashboard_loads_and_every_panel_has_a_query():
    board = dashboard()
    assert board["uid"] and board["title"] and {v["name"] for v in board["templating"]["list"]} == {
        "datasource", "namespace", "model"}
    panels = query_panels()
    for panel in panels:
        assert panel.get("targets") and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    titles = " | ".join(p["title"] for p in panels).lower()
    for what in ("request rate", "p50 / p95 / p99", "error ratio", "cache hit ratio", "batch size", "replicas",
                 "by revision", "queue", "tokens per text", "by backend", "error_type", "top-label share",
                 "confidence", "shadow agreement", "gpu utilisation", "gpu memory"):
        assert what in titles, what


def _bare_names(query: str) -> set[str]:
    """Identifiers left once strings, selectors, grouping clauses, ranges and function calls are removed."""
    query = re.sub(r'"[^"]*"', '""', query)
    query = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", query)  # Grafana's: its 2nd argument is a label
    query = re.sub(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}", " S ", query)
    query = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", query)
    query = re.sub(r"\[[^\]]*\]", " ", query)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", query))
    return names - PROMQL_WORDS - {"S"}


def test_every_query_names_its_metrics_with_braces():
    """So the name parsing of tests/chart/observability.py misses no metric the integration test should check."""
    for query in dashboard_queries() + rule_queries():
        assert _bare_names(query) == set(), query


def test_promtool_accepts_the_rendered_rules(tmp_path):
    rules = rendered_rules(tmp_path)
    done = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "SUCCESS: 9 rules found" in done.stdout, done.stdout + done.stderr


def test_the_alerts_fire_when_they_should(tmp_path):
    rendered_rules(tmp_path, {"monitoring": {"cost": {"hourlyBudget": 0.3}}})  # a budget a few test series pass
    shutil.copy(RULE_TESTS, tmp_path / "tests.yaml")
    done = subprocess.run([promtool(), "test", "rules", str(tmp_path / "tests.yaml")], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_monitoring_objects_render_as_configured():
    default = render()
    assert not by_kind(default, "PodMonitor") and not by_kind(default, "PrometheusRule")
    (board,) = [c for c in by_kind(default, "ConfigMap") if c["metadata"]["name"] == "demo-dashboard"]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["text-classifier.json"]) == dashboard()

    objects = render(MONITORING)
    (board,) = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "demo-dashboard"]
    assert board["metadata"]["namespace"] == "monitoring"
    assert board["metadata"]["annotations"] == {"grafana_folder": "KServe"}
    (monitor,) = by_kind(objects, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["text"]}
    selected = {e["key"]: e["values"] for e in monitor["spec"]["selector"]["matchExpressions"]}
    assert selected == {"serving.kserve.io/inferenceservice": ["emotion", "sentiment"],
                        "component": ["predictor", "transformer"]}
    targets = {r.get("targetLabel") for r in monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]}
    assert {"isvc", "component", "revision", "__address__", "__metrics_path__"} <= targets
    (rule,) = by_kind(objects, "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r}
    assert set(alerts) == {"TextClassifierLatencyP99High", "TextClassifierErrorRatioHigh",
                           "TextClassifierCacheHitRatioLow", "TextClassifierCacheCircuitOpen",
                           "TextClassifierPredictorQueueSaturated", "TextClassifierLabelSharesMoved",
                           "TextClassifierHourlyCostOverBudget", "TextClassifierGpuIdleWhileQueueGrows"}
    assert "< 0.7" in alerts["TextClassifierCacheHitRatioLow"]["expr"]  # the configured floor
    assert alerts["TextClassifierLatencyP99High"]["for"] == "5m" and "> 0.2" in alerts[
        "TextClassifierLatencyP99High"]["expr"]
    assert all('namespace="text"' in a["expr"] for a in alerts.values())
