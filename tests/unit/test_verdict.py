"""The canary verdict's arithmetic and decisions (the end-to-end proof with a real Prometheus: test_rollout.py)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rollout.analysis import HOLD, PROMOTE, ROLL_BACK, Revision, Thresholds, checks, decide, jensen_shannon, pick
from rollout.verdict import main, patch_command

ROOT = Path(__file__).resolve().parents[2]


def test_jensen_shannon_in_bits():
    assert jensen_shannon({"a": 5, "b": 5}, {"a": 50, "b": 50}) == 0  # counts are normalised
    assert jensen_shannon({"a": 10}, {"b": 3}) == pytest.approx(1.0)  # disjoint
    assert jensen_shannon({"a": 50, "b": 50}, {"a": 67, "b": 33}) > 0.02 > jensen_shannon({"a": 50, "b": 50},
                                                                                         {"a": 66, "b": 34})
    assert jensen_shannon({}, {"a": 1}) == 0  # no data: no divergence claimed (the count check holds instead)


def revision(name, version, requests, labels, p99_s=0.01, errors=0):
    return Revision(name, version, requests=requests, errors=errors, p99_s=p99_s, labels=labels, confidence=0.8)


PRIMARY = revision("r-00001", "v1", 1000, {"NEG": 300, "POS": 700})


def test_a_canary_like_the_primary_is_promoted_and_each_kind_of_bad_one_rolled_back():
    t = Thresholds()
    good = revision("r-00002", "v2", 150, {"NEG": 90, "POS": 210})
    assert decide(checks(PRIMARY, good, {}, t)) == PROMOTE
    inverted = revision("r-00002", "v2", 150, {"NEG": 210, "POS": 90})
    assert decide(checks(PRIMARY, inverted, {}, t)) == ROLL_BACK
    slow = revision("r-00002", "v2", 150, {"NEG": 90, "POS": 210}, p99_s=0.2)
    assert decide(checks(PRIMARY, slow, {}, t)) == ROLL_BACK
    a_bit_slower = revision("r-00002", "v2", 150, {"NEG": 90, "POS": 210}, p99_s=0.03)  # 3x, but only 20 ms
    assert decide(checks(PRIMARY, a_bit_slower, {}, t)) == PROMOTE
    failing = revision("r-00002", "v2", 150, {"NEG": 90, "POS": 210}, errors=5)
    assert decide(checks(PRIMARY, failing, {}, t)) == ROLL_BACK
    disagreeing_shadow = {("v1", "v2"): (500.0, 20.0)}
    assert decide(checks(PRIMARY, good, disagreeing_shadow, t)) == ROLL_BACK
    other_candidate = {("v1", "v9"): (500.0, 20.0)}  # evidence about another version: ignored
    assert decide(checks(PRIMARY, good, other_candidate, t)) == PROMOTE


def test_too_little_traffic_holds_but_a_clear_failure_still_rolls_back():
    t = Thresholds()
    few = revision("r-00002", "v2", 20, {"NEG": 10, "POS": 30})
    found = checks(PRIMARY, few, {}, t)
    assert decide(found) == HOLD
    assert {c.name: c.result for c in found}["request count"] == "inconclusive"
    assert decide(checks(PRIMARY, revision("r-00002", "v2", 20, {"POS": 40}, errors=10), {}, t)) == ROLL_BACK
    assert decide(checks(PRIMARY, None, {}, t)) == HOLD  # no canary yet
    assert decide(checks(PRIMARY, None, {("v1", "v2"): (500.0, 10.0)}, t)) == ROLL_BACK  # shadow phase: bad candidate


def test_revisions_are_picked_newest_as_canary_busiest_other_as_primary():
    found = {r.name: r for r in (PRIMARY, revision("r-00002", "v2", 5, {}), revision("r-00003", "v3", 50, {}))}
    primary, canary = pick(found, None, None)
    assert (primary.name, canary.name) == ("r-00001", "r-00003")
    primary, canary = pick(found, None, "r-00002")
    assert (primary.name, canary.name) == ("r-00001", "r-00002")
    assert pick({"r-00001": PRIMARY}, None, None) == (PRIMARY, None)


def test_the_patch_is_a_valid_canary_traffic_change_of_the_inference_service(tmp_path):
    kubectl = Path(sys.executable).parent / "kubectl"
    if not kubectl.exists():
        pytest.skip("kubectl is not installed in the virtualenv: run `make setup`")
    from tests.chart.schemas import CRD_DIR, validate

    for verdict, percent in ((PROMOTE, 100), (ROLL_BACK, 0)):
        command = patch_command(str(kubectl), "text-classifier", "sentiment", verdict)
        assert command[:6] == [str(kubectl), "patch", "inferenceservice", "sentiment", "-n", "text-classifier"]
        # the same patch, applied offline (--local) to the canary file: what the API server would store
        local = [str(kubectl), "patch", "--local", "-f", str(ROOT / "inferenceservices" / "sentiment-canary.yaml"),
                 "--type", "merge", "-p", command[-1], "-o", "yaml"]
        done = subprocess.run(local, capture_output=True, text=True, timeout=60, check=True)
        patched = yaml.safe_load(done.stdout)
        assert patched["spec"]["predictor"]["canaryTrafficPercent"] == percent
        # promoting ends the transformer's cache pin with the same patch; a roll back keeps it on the primary
        pin = patched["metadata"]["annotations"]["text-classifier.kserve.io/cache-model-version"]
        assert pin == ("" if verdict == PROMOTE else "sentiment-0.1.0")
        if CRD_DIR.is_dir():
            validate(patched)
    assert patch_command("kubectl", "ns", "x", HOLD) is None


def test_no_prometheus_no_verdict(capsys):
    assert main(["--prometheus", "http://127.0.0.1:9", "--namespace", "n", "--isvc", "x"]) == 1
    assert "not reachable" in capsys.readouterr().err


def test_thresholds_are_flags_with_their_defaults_in_the_help():
    done = subprocess.run([sys.executable, "-m", "rollout.verdict", "--help"], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    for flag, default in (("--max_label_divergence", "0.02"), ("--min_requests", "100"), ("--max_p99_ratio", "1.2"),
                          ("--min_shadow_agreement", "0.9"), ("--apply", "off by default")):
        assert flag in done.stdout and default in " ".join(done.stdout.split()), flag
