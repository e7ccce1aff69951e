"""The chart's cost rule and "$ per million answers" panel in a real Prometheus scraping real services.

Prometheus loads the PrometheusRule exactly as the chart renders it (with a budget the
test's pods pass) and scrapes a real predictor and transformer labelled as the chart's
PodMonitor labels them; the recorded cost, the panel's query and the budget alert then
read real samples (promtool's unit tests in tests/chart check the arithmetic on made-up series).
"""

from __future__ import annotations

import time

import pytest
import yaml

from harness.prometheus import PrometheusProcess, prometheus_binary
from tests.chart.observability import dashboard_panel
from tests.integration.adversarial import V1
from tests.integration.servers import HTTP, transformer_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(prometheus_binary() is None, reason="no prometheus binary (`make setup` copies it)")]

NS = "text"
PREDICTOR_POD_COST = 2 * 0.0513  # the chart's default CPU request and price: values.yaml
TRANSFORMER_POD_COST = 0.25 * 0.0513


def wait_for(prometheus: PrometheusProcess, expr: str, timeout_s: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while not (rows := prometheus.query(expr)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return rows


def test_cost_per_million_answers_from_real_scrapes(predictor, redis, tmp_path):
    from tests.chart.test_observability import rendered_rules

    rules = rendered_rules(tmp_path, {"monitoring": {"cost": {"hourlyBudget": 0.05}}})
    transformer = transformer_for(predictor, redis, tmp_path / "transformer.log", name="sentiment").start()
    labels = lambda component: {"namespace": NS, "isvc": "sentiment", "component": component,  # noqa: E731
                                "revision": f"sentiment-{component}-00001"}
    prometheus = PrometheusProcess(tmp_path, [(f"127.0.0.1:{predictor.http_port}", labels("predictor")),
                                              (f"127.0.0.1:{transformer.http_port}", labels("transformer"))])
    config = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    config["rule_files"] = [str(rules)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus.start()
    try:
        answers = 'sum(rate(text_classifier_answers_total{component="transformer"}[5m]))'
        deadline = time.monotonic() + 60
        index = 0
        while not [r for r in prometheus.query(answers) if float(r["value"][1]) > 0] and time.monotonic() < deadline:
            body = {"instances": [f"cost text {index % 5}", "a text every request repeats"]}  # mostly cache hits
            assert HTTP.post(f"{transformer.url}{V1}", json=body, timeout=30).status_code == 200
            index += 1
            time.sleep(0.1)  # traffic across a few scrapes, for a rate
        cost = {row["metric"]["component"]: float(row["value"][1])
                for row in wait_for(prometheus, "text_classifier:cost_dollars_per_hour")}
        assert cost == pytest.approx({"predictor": PREDICTOR_POD_COST, "transformer": TRANSFORMER_POD_COST})
        panel = dashboard_panel("$ per million answers")["targets"][0]["expr"]
        panel = panel.replace("$namespace", NS).replace("$model", ".+")
        # the panel against the same arithmetic on the raw answers, in one evaluation (one instant, one rate)
        expected = f"{PREDICTOR_POD_COST + TRANSFORMER_POD_COST} / ({answers} * 3600 / 1e6)"
        (ratio,) = prometheus.query(f"sum({panel}) / ({expected})")
        assert float(ratio["value"][1]) == pytest.approx(1.0)
        (pending,) = wait_for(prometheus, 'ALERTS{alertname="TextClassifierHourlyCostOverBudget"}')
        assert pending["metric"]["alertstate"] == "pending"  # 0.115 $/h > 0.05; it fires after its 15 minutes
    finally:
        prometheus.stop()
        transformer.stop()
