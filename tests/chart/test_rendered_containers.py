"""The chart's rendered predictor and transformer containers, launched here as processes, answer a request.

Each container runs its image's entrypoint (``python -m predictor`` /
``python -m transformer``) with the rendered ``args`` and ``env``. Only what a cluster
provides is substituted: the baked-in model (/opt/model) becomes a tiny local model,
the Redis Secret's URL a local redis-server, KServe's injected ``--predictor_host``
the local predictor, and ports free local ones (appended, so they win).
"""

import time

import pytest

from tests.chart.helm import CHART, by_kind, render
from tests.integration.servers import HTTP, TEST_CACHE_TIMEOUT_MS, RedisProcess, ServerProcess, metric


def redis_keys(url: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        keys = client.keys("*")
    finally:
        client.close()
    assert keys, "nothing was cached"
    return keys

pytestmark = [pytest.mark.chart, pytest.mark.integration]


def container(isvc: dict, component: str) -> dict:
    return isvc["spec"][component]["containers"][0]


@pytest.mark.parametrize("mode", ["Knative", "Standard"])
@pytest.mark.parametrize("values", [None, CHART / "ci" / "grpc-sentiment-only-values.yaml"], ids=["rest", "grpc"])
def test_rendered_containers_serve_a_request(values, mode, tiny_model_dir, tmp_path, monkeypatch):
    objects = render(values, f"deploymentMode={mode}")
    isvc = next(o for o in by_kind(objects, "InferenceService") if o["metadata"]["name"] == "sentiment")
    predictor_spec, transformer_spec = container(isvc, "predictor"), container(isvc, "transformer")
    assert "--model_dir=/opt/model" in predictor_spec["args"]
    predictor_args = [a.replace("/opt/model", str(tiny_model_dir)) for a in predictor_spec["args"]]
    redis = RedisProcess(tmp_path / "redis.log").start()
    predictor = ServerProcess("predictor", predictor_args, tmp_path / "predictor.log")
    try:
        predictor.start()
        grpc = "--predictor_protocol=grpc-v2" in transformer_spec["args"]
        if mode == "Knative":
            assert ({p["name"] for p in predictor_spec["ports"]} == {"h2c"}) is grpc  # Knative's port name for gRPC
        else:  # Standard: both, and the transformer names the predictor Service's port of its protocol
            assert {p["name"] for p in predictor_spec["ports"]} == {"http", "grpc"}
            assert any(a.endswith(":8081" if grpc else ":80") for a in transformer_spec["args"]
                       if a.startswith("--predictor_host="))
        host = predictor.grpc_target if grpc else f"127.0.0.1:{predictor.http_port}"
        for item in transformer_spec["env"]:
            if item["name"] == "TRANSFORMER_CACHE_KEY_SECRET":  # the chart's generated Secret: here, any key
                assert item["valueFrom"]["secretKeyRef"]["key"] == "key"
                monkeypatch.setenv(item["name"], "a test cache key")
            elif "valueFrom" in item:  # the Redis Secret: here, our local Redis
                assert item["valueFrom"]["secretKeyRef"]["key"] == "url"
                monkeypatch.setenv(item["name"], redis.url)
            else:
                monkeypatch.setenv(item["name"], item["value"])
        # The rendered CACHE_TIMEOUT_MS (20 ms) is a cluster's; here a loaded CI machine can miss it and turn
        # the expected hit into a miss, so the tests' deadline is appended (it wins, like the ports).
        transformer = ServerProcess("transformer", [*transformer_spec["args"], f"--predictor_host={host}",
                                                    f"--cache_timeout_ms={TEST_CACHE_TIMEOUT_MS}"],
                                    tmp_path / "transformer.log")
        try:
            transformer.start()
            for outcome in ("miss", "hit"):
                response = HTTP.post(f"{transformer.url}/v1/models/sentiment:predict",
                                      json={"instances": ["the chart matches the code"]}, timeout=30)
                assert response.status_code == 200, response.text
                assert "x-cache" not in response.headers  # the chart leaves the cache headers off
                assert metric(transformer.url, "transformer_cache_lookups_total", outcome=outcome) == 1
            release = next(item["value"] for item in transformer_spec["env"] if item["name"] == "TRANSFORMER_CACHE_KEY_RELEASE")
            assert all(key.startswith(f"tc:{release}:sentiment:") for key in redis_keys(redis.url))
            metadata = HTTP.get(f"{predictor.url}/v2/models/sentiment").json()
            version_arg = next(a for a in predictor_spec["args"] if a.startswith("--model_version="))
            assert metadata["parameters"]["model_version"] == version_arg.split("=", 1)[1]
        finally:
            transformer.stop()
    finally:
        predictor.stop()
        redis.stop()


def test_rendered_shadow_is_scored_by_the_rendered_transformer(tiny_model_dir, tmp_path, monkeypatch):
    """ci/shadow-values.yaml: the shadow InferenceService's predictor and the transformer wired to it, as processes."""
    from tests.integration.servers import metric, sample_in

    isvcs = {o["metadata"]["name"]: o for o in by_kind(render(CHART / "ci" / "shadow-values.yaml"), "InferenceService")}
    started = []
    redis = RedisProcess(tmp_path / "redis.log").start()
    try:
        hosts = {}
        for name in ("sentiment", "sentiment-shadow"):
            args = [a.replace("/opt/model", str(tiny_model_dir)) for a in container(isvcs[name], "predictor")["args"]]
            started.append(ServerProcess("predictor", args, tmp_path / f"{name}.log").start())
            hosts[name] = f"127.0.0.1:{started[-1].http_port}"
        spec = container(isvcs["sentiment"], "transformer")
        for item in spec["env"]:
            value = redis.url if "valueFrom" in item else item["value"]
            if item["name"] == "TRANSFORMER_SHADOW_PREDICTOR_HOST":  # the cluster's service name: here, the local shadow
                assert value == "sentiment-shadow-predictor.text.svc.cluster.local:80"
                value = hosts["sentiment-shadow"]
            monkeypatch.setenv(item["name"], value)
        # The rendered shadow timeout and cache deadline are a cluster's; a loaded CI machine can miss them and
        # drop every shadow call, so the tests' are appended (the last flag wins, like the ports).
        transformer = ServerProcess("transformer", [*spec["args"], f"--predictor_host={hosts['sentiment']}",
                                                    "--shadow_timeout_ms=10000",
                                                    f"--cache_timeout_ms={TEST_CACHE_TIMEOUT_MS}"],
                                    tmp_path / "transformer.log")
        started.append(transformer.start())
        for i in range(20):
            response = HTTP.post(f"{transformer.url}/v1/models/sentiment:predict",
                                 json={"instances": [f"shadowed text {i}"]}, timeout=30)
            assert response.status_code == 200, response.text
        versions = {"model_name": "sentiment", "primary_version": "sentiment-0.1.0", "shadow_version": "sentiment-0.2.0"}
        deadline = time.monotonic() + 60  # shadow calls finish after the answers (slowly on a loaded machine)
        while metric(transformer.url, "transformer_shadow_compared_texts_total", **versions) == 0:
            assert time.monotonic() < deadline, transformer.log()[-2000:]
            time.sleep(0.2)
        # the same weights under two versions: whatever percent sampled, every compared text agrees. Both from
        # one scrape: shadow calls still finishing between two scrapes would count texts in the second only.
        scrape = HTTP.get(f"{transformer.url}/metrics", timeout=10).text
        compared = sample_in(scrape, "transformer_shadow_compared_texts_total", **versions)
        assert compared > 0 and sample_in(scrape, "transformer_shadow_agreed_texts_total", **versions) == compared
    finally:
        for server in reversed(started):
            server.stop()
        redis.stop()
