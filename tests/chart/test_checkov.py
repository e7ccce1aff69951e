"""checkov on every rendered values file: no failed check beyond the justified skip list in .checkov.yaml."""

import json
import subprocess

import pytest

from tests.chart.helm import CHART, VALUES_FILES, helm, tool

pytestmark = pytest.mark.chart


def test_checkov_passes_on_every_rendering(tmp_path):
    for values in VALUES_FILES:
        name = "default" if values is None else values.stem
        for mode in ("Knative", "Standard"):
            rendered = helm("template", "demo", str(CHART), "--namespace", "text", "--set", f"deploymentMode={mode}",
                            *(["-f", str(values)] if values else [])).stdout
            (tmp_path / f"{name}-{mode.lower()}.yaml").write_text(rendered)
    done = subprocess.run([tool("checkov"), "-d", str(tmp_path), "--config-file", str(CHART / ".checkov.yaml"),
                           "-o", "json"], capture_output=True, text=True, timeout=600, check=False)
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
              for report in reports for c in report["results"]["failed_checks"]]
    assert failed == [], "\n".join(failed)
    assert sum(report["summary"]["passed"] for report in reports) > 100  # it really checked something
