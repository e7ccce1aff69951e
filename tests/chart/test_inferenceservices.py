"""The InferenceService files are the chart's rendering, validate against KServe's real CRD schema, and the canary
is the base plus a canary."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import ROOT, tool
from tests.chart.schemas import CRD_DIR, validate

needs_crds = pytest.mark.skipif(not CRD_DIR.is_dir(), reason=f"{CRD_DIR} is absent: the CRD schemas live there")

ISVC_DIR = Path(__file__).resolve().parents[2] / "inferenceservices"
FILES = sorted(ISVC_DIR.glob("*.yaml"))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def render_check(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "render_inferenceservices.py"), "--check",
                           "--out", str(out), "--helm", tool("helm")], capture_output=True, text=True, timeout=300)


def test_the_files_are_the_chart_rendered():
    done = render_check(ISVC_DIR)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert {p.name for p in FILES} == {"sentiment.yaml", "emotion.yaml", "sentiment-canary.yaml"}


def test_a_file_edited_by_hand_fails_the_check(tmp_path):
    shutil.copytree(ISVC_DIR, tmp_path, dirs_exist_ok=True)
    edited = (tmp_path / "emotion.yaml").read_text().replace("maxReplicas: 4", "maxReplicas: 5", 1)
    (tmp_path / "emotion.yaml").write_text(edited)
    done = render_check(tmp_path)
    assert done.returncode == 1 and "emotion.yaml differ from the chart" in done.stderr
    assert "-    maxReplicas: 5" in done.stdout and "+    maxReplicas: 4" in done.stdout


@needs_crds
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_inference_service_validates_against_the_crd(path):
    obj = load(path)
    validate(obj)
    assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    for component, metric in (("predictor", "rps"), ("transformer", "concurrency")):
        spec = obj["spec"][component]
        assert spec["scaleMetric"] == metric and spec["scaleTarget"] > 0
        container = spec["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["limits"] and container["resources"]["requests"]


@needs_crds
def test_a_typo_is_rejected():
    obj = load(ISVC_DIR / "sentiment.yaml")
    obj["spec"]["predictor"]["minReplica"] = 1  # misspelt minReplicas
    with pytest.raises(AssertionError, match="minReplica"):
        validate(obj)


def test_the_canary_is_the_base_with_a_new_model_and_ten_percent():
    base, canary = load(ISVC_DIR / "sentiment.yaml"), load(ISVC_DIR / "sentiment-canary.yaml")
    assert canary["spec"]["predictor"].pop("canaryTrafficPercent") == 10
    new, old = canary["spec"]["predictor"]["containers"][0], base["spec"]["predictor"]["containers"][0]
    assert new["image"] != old["image"] and new.pop("image") and old.pop("image")
    assert "--model_version=sentiment-0.2.0" in new["args"] and "--model_version=sentiment-0.1.0" in old["args"]
    new["args"] = old["args"]
    env = canary["spec"]["transformer"]["containers"][0]["env"]  # the generated settings come after the pin
    pinned = env.pop(next(i for i, e in enumerate(env) if e["name"] == "CACHE_MODEL_VERSION"))
    # reads stay on the primary: the pin is the InferenceService's annotation, which a promotion patch empties
    pin_key = "text-classifier.kserve.io/cache-model-version"
    assert pinned == {"name": "CACHE_MODEL_VERSION",
                      "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{pin_key}']"}}}
    assert canary["metadata"]["annotations"].pop(pin_key) == "sentiment-0.1.0"
    assert canary == base


SHADOW_FILES = sorted((ISVC_DIR / "shadow").glob("*.yaml"))


@pytest.mark.parametrize("path", SHADOW_FILES, ids=[p.name for p in SHADOW_FILES])
def test_the_shadow_alternatives_validate_against_their_crds(path):
    validate(load(path))


def test_the_shadow_is_predictor_only():
    # the mesh mirror is the chart's (models.<name>.shadow.via=mirror, Standard mode): a file applied
    # beside the chart replaced its VirtualService (tests/chart/test_standard_mode.py)
    shadow = load(ISVC_DIR / "shadow" / "sentiment-shadow.yaml")
    assert set(shadow["spec"]) == {"predictor"} and shadow["spec"]["predictor"]["minReplicas"] == 0
    assert "--model_name=sentiment" in shadow["spec"]["predictor"]["containers"][0]["args"]
