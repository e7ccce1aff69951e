"""`helm test`'s pod, as rendered, sends a real inference and checks the answer.

The rendered pod's script and env run here with sh and curl, against the chart's rendered
predictor and transformer started as processes (as in test_rendered_containers.py): only the
URL is the local transformer's instead of the gateway's. A wrong version fails the check.
"""

import subprocess

import pytest

from tests.chart.helm import by_kind, render
from tests.chart.test_rendered_containers import container
from tests.integration.servers import TEST_CACHE_TIMEOUT_MS, RedisProcess, ServerProcess

pytestmark = [pytest.mark.chart, pytest.mark.integration]


def run_pod(pod: dict, url: str) -> subprocess.CompletedProcess:
    (spec,) = pod["spec"]["containers"]
    assert spec["command"] == ["sh", "-c"]
    env = {item["name"]: item["value"] for item in spec["env"]}
    assert env.pop("CONNECT_TO").startswith("text.example.com:80:")  # the gateway: here, the transformer itself
    env["URL"] = url
    return subprocess.run(["sh", "-c", spec["args"][0]], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=300)


def test_the_helm_test_pod_checks_a_real_answer(tiny_model_dir, tmp_path, monkeypatch):
    objects = render()
    isvc = next(o for o in by_kind(objects, "InferenceService") if o["metadata"]["name"] == "sentiment")
    pod = next(p for p in by_kind(objects, "Pod") if p["metadata"]["name"].endswith("-test-sentiment"))
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    predictor_args = [a.replace("/opt/model", str(tiny_model_dir)) for a in container(isvc, "predictor")["args"]]
    redis = RedisProcess(tmp_path / "redis.log").start()
    predictor = ServerProcess("predictor", predictor_args, tmp_path / "predictor.log")
    try:
        predictor.start()
        spec = container(isvc, "transformer")
        for item in spec["env"]:
            monkeypatch.setenv(item["name"], redis.url if "valueFrom" in item else item["value"])
        transformer = ServerProcess("transformer", [*spec["args"], f"--predictor_host=127.0.0.1:{predictor.http_port}",
                                                    f"--cache_timeout_ms={TEST_CACHE_TIMEOUT_MS}"],
                                    tmp_path / "transformer.log")
        try:
            transformer.start()
            url = transformer.url  # the gateway strips the route's /sentiment prefix; here there is none
            done = run_pod(pod, url)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "helm test: sentiment answered " in done.stdout and "(model_version sentiment-0.1.0)" in done.stdout
            # the same pod for a release that serves another version: the check fails
            (spec_env,) = pod["spec"]["containers"]
            for item in spec_env["env"]:
                if item["name"] == "VERSIONS":
                    item["value"] = "sentiment-9.9.9"
            done = run_pod(pod, url)
            assert done.returncode == 1 and "model_version 'sentiment-0.1.0' is none of: sentiment-9.9.9" in done.stderr
        finally:
            transformer.stop()
    finally:
        predictor.stop()
        redis.stop()
