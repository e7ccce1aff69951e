"""``python -m transformer``'s settings, declared once (runtime/settings.py says how a field becomes a flag)."""

from __future__ import annotations

from typing import Literal

from contract.parameters import DEFAULT_TRUNCATION, TRUNCATIONS
from runtime.settings import TRANSFORMER_DEADLINE_S, ServiceSettings, setting


class TransformerSettings(ServiceSettings):
    env_prefix_name = "TRANSFORMER_"
    # KServe's flags for the predictor connection, with our defaults and env vars.
    predictor_host: str | None = setting(None, "The predictor, host:port.", kserve=True)
    predictor_protocol: Literal["v2", "grpc-v2"] = setting(
        "v2", "The predictor speaks V2, over REST or gRPC.", kserve=True)
    predictor_request_timeout_seconds: int = setting(
        TRANSFORMER_DEADLINE_S, "Deadline of one predictor call; must exceed the predictor's `--request_timeout_s`.",
        kserve=True)
    redis_url: str = setting("redis://127.0.0.1:6379/0", "the cache; `rediss://` for TLS, password in the URL; "
                             "`redis+cluster://` (or `rediss+cluster://`) for a Redis Cluster")
    redis_cluster: bool = setting(
        False, "the Redis at `--redis_url` is one node of a Redis Cluster (or ElastiCache in cluster mode); see "
               "\"A cache that outgrows one Redis\"")
    cache_ttl_s: int = setting(86_400, "seconds a cached result lives")
    cache_timeout_ms: float = setting(20.0, "deadline of each Redis call; slower counts as a miss")
    cache_failure_threshold: int = setting(3, "consecutive Redis failures that open the circuit")
    cache_reset_s: float = setting(1.0, "seconds the open circuit skips Redis before probing it again")
    cache_headers: bool = setting(
        False, "answer `x-cache` (hit, miss, partial), `x-cache-hits` and the predictor's timing headers (present "
               "only when texts were computed); they tell any client whether a text was sent recently, so leave "
               "them off where untrusted clients call (the chart does)")
    cache_key_secret: str | None = setting(
        None, "the key of the texts' keyed hash in cache keys; set it by env var from a Secret (the chart does), "
              "not by flag (a flag shows in the process list); unset: a public development key, with a warning",
        shown="none (development key)")
    cache_key_release: str = setting(
        "", "a release name put in every cache key (`tc:<release>:...`), so releases sharing one Redis never share "
            "entries (the chart sets its release)", shown="none")
    cache_model_version: str | None = setting(
        None, "read only entries of this model version (pin it on a canary's transformer)",
        shown="the version the predictor reports")
    rate_limit_rps: float = setting(
        0.0, "cost units per second per client, a unit being a model row of up to 128 tokens (a short text 1, "
             "an explained 64-word text 65); more is a 429 `rate_limited` with `Retry-After` (see \"Reliability "
             "and security\")", shown="0 (off)")
    rate_limit_burst: int = setting(
        0, "units a client may spend at once; a request costing more goes only when the client's bucket is full",
        shown="0 (the rate, rounded up)")
    rate_limit_key: str = setting(
        "", "header (gRPC: metadata key) naming the client, e.g. `x-api-key`; requests without it are keyed by IP",
        shown="none: the client's IP")
    rate_limit_global_rps: float = setting(
        0.0, "cost units per second of all clients together (per worker), charged like `--rate_limit_rps`",
        shown="0 (off)")
    rate_limit_global_burst: int = setting(0, "units all clients together may spend at once",
                                           shown="0 (the global rate, rounded up)")
    shadow_predictor_host: str | None = setting(
        None, "a candidate model's predictor (`host:port`, same protocol as `--predictor_protocol`) that also scores "
              "`--shadow_percent` of the cache misses, for comparison only (see \"Rolling out a model\")",
        shown="none (no shadow)")
    shadow_percent: float = setting(100.0, "share of the texts sent to the predictor that are also sent to the shadow")
    shadow_max_in_flight: int = setting(
        8, "most shadow calls at once per worker; beyond it texts are not shadowed and are counted as `dropped`")
    shadow_timeout_ms: float = setting(1000.0, "deadline of each shadow call (the user's answer never waits for it)")
    truncation: Literal[TRUNCATIONS] = setting(
        DEFAULT_TRUNCATION, "the truncation sent to the predictor for requests that do not choose (set it like the "
                "predictor's; the chart does)")
    fast_path: bool = setting(
        True, "answer REST predict requests whose every text is cached before KServe's routing: in uvicorn's HTTP "
              "protocol, below ASGI (transformer/fasthttp.py), unless a layer needs ASGI (tracing, the rate limit, "
              "`--access_log_format`, proxy headers), then as the innermost ASGI middleware (transformer/fastpath.py); "
              "`false`: every request goes the full way")
    explain: bool = setting(True, "`false`: `:explain` is a 501 here too, cached explanations included")

    def cache_keys(self):
        """The cache key maker; the development key when no secret is set (the caller warns)."""
        from contract.cachekey import DEV_SECRET, CacheKeys

        secret = self.cache_key_secret.encode() if self.cache_key_secret else DEV_SECRET
        return CacheKeys(secret, self.cache_key_release)

    def predictor_config(self, use_ssl: bool, health_check: bool):
        """KServe's PredictorConfig: what the transformer's client and KServe's health check both read."""
        from runtime.kserve.client import PredictorConfig

        return PredictorConfig(
            predictor_host=self.predictor_host,
            predictor_protocol=self.predictor_protocol,
            predictor_use_ssl=use_ssl,
            predictor_request_timeout_seconds=self.predictor_request_timeout_seconds,
            predictor_health_check=health_check,
        )

    def shadow_config(self, use_ssl: bool):
        """The shadow predictor's PredictorConfig: the same protocol, its own host and (short) deadline."""
        from runtime.kserve.client import PredictorConfig

        return PredictorConfig(
            predictor_host=self.shadow_predictor_host,
            predictor_protocol=self.predictor_protocol,
            predictor_use_ssl=use_ssl,
            predictor_request_timeout_seconds=self.shadow_timeout_ms / 1000,
            predictor_health_check=False,
        )
