"""The cache on a real Redis Cluster: three ``redis-server --cluster-enabled yes`` masters made one cluster by
``redis-cli --cluster create`` (harness/redis_cluster.py).

The transformer's cache tests (imported from test_transformer.py) run here against the cluster, then what only a
cluster has: keys of one request spread over every node without CROSSSLOT, and a master killed under load with
every request answered, the other masters' hits going on, and hits back for its slots once it returns.
"""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
from redis.cluster import RedisCluster

from contract.cachekey import DEV_SECRET, CacheKeys
from harness.redis_cluster import RedisClusterProcess
from tests.integration.servers import metric
from tests.integration.test_faults import SteadyLoad
from tests.integration.test_transformer import (  # noqa: F401  (the cache tests, run here against the cluster)
    post_v1,
    test_a_repeated_request_is_a_hit_that_never_reaches_the_predictor,
    test_duplicates_and_concurrent_requests_are_computed_once,
    test_seven_cached_of_ten_sends_exactly_three_texts_in_order,
    test_v2_rest_and_grpc_give_the_predictors_answers,
    transformer_for,
    unique,
)

DEV_KEYS = CacheKeys(DEV_SECRET)  # these transformers have no CACHE_KEY_SECRET

# A cluster lookup of 32 keys costs ~1.7 ms of redis-py CPU (one MGET per slot, each resolved in Python; 0.3 ms on
# one Redis): within the default 20 ms on a quiet machine, but not on a CI box shared by many jobs.
DEADLINE = ("--cache_timeout_ms", "250")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("redis-cli"), reason="redis-cli is not installed")]


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    """Overrides conftest's single Redis for the imported tests: the cluster, named by a redis+cluster:// URL."""
    cluster = RedisClusterProcess(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


def warmed(front):
    """``front`` once its cluster client knows the cluster: it learns it in the background, and until then
    lookups are misses (transformer/cluster.py)."""
    probe = unique(1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if post_v1(front, probe).headers["x-cache"] == "hit":
            return front
        time.sleep(0.1)
    raise AssertionError(f"the transformer never read its cache:\n{front.log()[-2000:]}")


@pytest.fixture(scope="module")
def transformer(predictor, redis, tmp_path_factory):
    server = transformer_for(predictor, redis, tmp_path_factory.mktemp("logs") / "transformer.log", *DEADLINE).start()
    yield warmed(server)
    server.stop()


def direct(cluster: RedisClusterProcess) -> RedisCluster:
    return RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port, socket_timeout=2)


def owner(client: RedisCluster, key: str) -> int:
    """The port of the master that holds ``key``'s slot."""
    return client.get_node_from_key(key).port


def test_one_request_spread_over_every_node_is_one_lookup_without_crossslot(transformer, redis):
    texts = unique(32)
    keys = [DEV_KEYS.key("sentiment", "", text) for text in texts]  # any version: only the spread is checked
    client = direct(redis)
    assert len({owner(client, key) for key in keys}) == 3  # 32 texts land on all three masters
    assert post_v1(transformer, texts).headers["x-cache"] == "miss"
    again = post_v1(transformer, texts)
    assert again.headers["x-cache"] == "hit" and again.headers["x-cache-hits"] == "32"
    errors = metric(transformer.url, "transformer_cache_errors_total", model_name="sentiment", operation="get")
    assert post_v1(transformer, texts).headers["x-cache-hits"] == "32"
    # No CROSSSLOT, nor any other error, once warm (the first connections to each node may have timed out).
    assert metric(transformer.url, "transformer_cache_errors_total", model_name="sentiment", operation="get") == errors


def hits_by_node(load: SteadyLoad, owners: dict[str, int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for text, cache in load.answers:
        if cache == "hit" and text in owners:
            counts[owners[text]] = counts.get(owners[text], 0) + 1
    return counts


def test_a_master_killed_under_load_fails_no_request_and_the_other_masters_keep_hitting(predictor, tmp_path):
    cluster = RedisClusterProcess(tmp_path / "cluster").start()
    front = warmed(transformer_for(predictor, cluster, tmp_path / "transformer.log", "--cache_reset_s", "0.3",
                                   *DEADLINE).start())
    try:
        cached = unique(24)
        assert post_v1(front, cached).status_code == 200
        version = httpx.get(f"{front.url}/v2/models/sentiment", timeout=10).json()["parameters"]["model_version"]
        client = direct(cluster)
        owners = {text: owner(client, DEV_KEYS.key("sentiment", version, text)) for text in cached}
        victim = cluster.nodes[1]
        assert victim.port in owners.values() and len(set(owners.values())) == 3
        with SteadyLoad(front.url, cached, cached_share=0.9) as before:
            time.sleep(1.5)
        with SteadyLoad(front.url, cached, cached_share=0.9) as during:
            time.sleep(0.5)
            victim.stop()  # SIGKILL: no goodbye
            time.sleep(3)
        victim.start()  # same port and nodes.conf: it rejoins with its slots, empty
        cluster.wait_until_ok()
        with SteadyLoad(front.url, cached, cached_share=0.9) as after:
            time.sleep(3)

        results = before.results + during.results + after.results
        assert results and all(status == 200 for *_, status, _ in results), \
            {(status, error_type) for *_, status, error_type in results if status != 200}
        assert max(seconds for _, seconds, *_ in results) < 2  # fail-open within the deadline, no hang
        assert metric(front.url, "transformer_cache_errors_total", model_name="sentiment", operation="get") >= 1
        survivors = hits_by_node(during, owners)
        assert all(survivors.get(node.port, 0) > 0 for node in cluster.nodes if node is not victim), survivors
        back = hits_by_node(after, owners)  # its entries were lost, rewritten on the first miss, then hit
        assert back.get(victim.port, 0) > 0, back
    finally:
        front.stop()
        cluster.stop()
