"""``python -m transformer``: validation and a per-text Redis cache in front of the predictor.

All of KServe's standard transformer flags apply (``--model_name``,
``--predictor_host``, ``--predictor_protocol`` v2 or grpc-v2,
``--predictor_request_timeout_seconds``, ``--http_port``, ``--grpc_port``, ...), plus
the flags of transformer/settings.py; each of ours can also be set by the env var
named in its help.
"""

from __future__ import annotations

import logging
import sys

from runtime import multiproc

PROG = "python -m transformer"


def main(argv: list[str] | None = None) -> None:
    multiproc.enable()
    # Imported only now: Prometheus must be in multiprocess mode before kserve (and so
    # prometheus_client) is imported. See runtime/multiproc.py.
    from runtime import tracing
    from runtime.logs import configure_logging
    from runtime.server import serve
    from runtime.settings import parse
    from transformer.cache import TextCache
    from transformer.cluster import ClusterTextCache, is_cluster_url
    from transformer.model import CachingTransformer
    from transformer.settings import TransformerSettings
    from transformer.upstream import PredictorClient

    settings, args = parse(TransformerSettings, PROG, __doc__, argv)
    configure_logging(settings.log_format, settings.access_log)
    tracing.setup(f"{settings.model_name}-transformer")
    if not settings.predictor_host:
        sys.exit("transformer: --predictor_host (or PREDICTOR_HOST) is required, e.g. 127.0.0.1:8090")
    s = settings
    # KServe's own flags, read from its parse
    predictor_config = s.predictor_config(args.predictor_use_ssl, args.enable_predictor_health_check)
    cache_class = ClusterTextCache if s.redis_cluster or is_cluster_url(s.redis_url) else TextCache
    cache = cache_class(s.redis_url, s.model_name, s.cache_ttl_s, s.cache_timeout_ms / 1000, s.cache_failure_threshold,
                      s.cache_reset_s)
    predictor = PredictorClient(predictor_config)
    shadow = None
    if s.shadow_predictor_host:
        from transformer.shadow import ShadowScorer

        try:
            shadow = ShadowScorer(s.model_name, PredictorClient(s.shadow_config(args.predictor_use_ssl)),
                                  s.shadow_percent, s.shadow_max_in_flight)
        except ValueError as exc:
            sys.exit(f"transformer: {exc}")
    try:
        keys = s.cache_keys()
    except ValueError as exc:
        sys.exit(f"transformer: {exc}")
    if keys.is_dev:
        logging.getLogger("transformer").warning(
            "No CACHE_KEY_SECRET: cache keys use the public development key, so anyone who can read Redis can "
            "confirm a guessed text. Set it from a Secret outside development (the chart does).")
    model = CachingTransformer(s.model_name, predictor, cache, s.limits(), s.cache_model_version, shadow,
                               s.truncation, s.explain, keys=keys, cache_headers=s.cache_headers)
    model.load()
    middlewares, interceptors = (), ()
    if s.rate_limit_rps > 0 or s.rate_limit_global_rps > 0:
        from transformer.ratelimit import GrpcRateLimit, RateLimiter, RateLimitMiddleware

        limiter = RateLimiter(s.rate_limit_rps, s.rate_limit_burst, s.rate_limit_key,
                              global_rps=s.rate_limit_global_rps, global_burst=s.rate_limit_global_burst)
        middlewares, interceptors = ((RateLimitMiddleware, {"limiter": limiter}),), (GrpcRateLimit(limiter),)
    fast_path = None
    if s.fast_path:
        from transformer.fasthttp import FastPathBelowAsgi

        fast_path = FastPathBelowAsgi
    serve(model, settings, args, rest_middlewares=middlewares, grpc_interceptors=interceptors,
          predictor_config=predictor_config, rest_fast_path=fast_path)


if __name__ == "__main__":
    main()
