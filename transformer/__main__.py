"""``python -m transformer``: validation and a per-text Redis cache in front of the predictor.

All of KServe's standard transformer flags apply (``--model_name``,
``--predictor_host``, ``--predictor_protocol`` v2 or grpc-v2,
``--predictor_request_timeout_seconds``, ``--http_port``, ``--grpc_port``, ...), plus
the flags below; each of ours can also be set by the env var named in its help.
"""

from __future__ import annotations

import argparse
import sys

from contract import multiproc


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at the top: main() must switch Prometheus to multiprocess mode
    # before kserve (and so prometheus_client) is imported. See contract/multiproc.py.
    from contract.flags import add_limit_flags, add_logging_flags, env, service_parser, strtobool

    parser = service_parser("python -m transformer", __doc__)
    parser.set_defaults(
        predictor_host=env("PREDICTOR_HOST", None),
        predictor_protocol=env("PREDICTOR_PROTOCOL", "v2"),
        predictor_request_timeout_seconds=env("PREDICTOR_REQUEST_TIMEOUT_SECONDS", 10, int),
    )
    add = parser.add_argument
    add("--redis_url", default=env("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis for the per-text cache; redis:// or rediss:// (TLS), password in the URL [REDIS_URL].")
    add("--redis_cluster", type=strtobool, default=env("REDIS_CLUSTER", False, strtobool),
        help="The Redis at --redis_url is one node of a Redis Cluster (or ElastiCache in cluster mode): keys are "
             "grouped by hash slot, pipelined per node; a redis+cluster:// URL says the same [REDIS_CLUSTER].")
    add("--cache_ttl_s", type=int, default=env("CACHE_TTL_S", 86_400, int),
        help="Seconds a cached result lives [CACHE_TTL_S].")
    add("--cache_timeout_ms", type=float, default=env("CACHE_TIMEOUT_MS", 20.0, float),
        help="Deadline of each Redis call; slower counts as a miss [CACHE_TIMEOUT_MS].")
    add("--cache_failure_threshold", type=int, default=env("CACHE_FAILURE_THRESHOLD", 3, int),
        help="Consecutive Redis failures that open the circuit [CACHE_FAILURE_THRESHOLD].")
    add("--cache_reset_s", type=float, default=env("CACHE_RESET_S", 1.0, float),
        help="Seconds the open circuit skips Redis before probing it again [CACHE_RESET_S].")
    add("--cache_model_version", default=env("CACHE_MODEL_VERSION", None),
        help="Read only entries of this model version (pin it on a canary's transformer); default: the "
             "version the predictor reports [CACHE_MODEL_VERSION].")
    add("--rate_limit_rps", type=float, default=env("RATE_LIMIT_RPS", 0.0, float),
        help="Inference requests per second each client may send; more is a 429 rate_limited with Retry-After; "
             "0: no limit [RATE_LIMIT_RPS].")
    add("--rate_limit_burst", type=int, default=env("RATE_LIMIT_BURST", 0, int),
        help="Requests a client may send at once before the rate applies; 0: the rate rounded up "
             "[RATE_LIMIT_BURST].")
    add("--rate_limit_key", default=env("RATE_LIMIT_KEY", ""),
        help="Header (gRPC: metadata) that names the client, e.g. x-api-key; without it, or when a request lacks "
             "it, the client is its IP address [RATE_LIMIT_KEY].")
    add_limit_flags(parser)
    add_logging_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    multiproc.enable()
    from kserve.predictor_config import PredictorConfig

    from contract import tracing
    from contract.flags import configure_logging, limits_from
    from contract.server import serve
    from transformer.cache import TextCache
    from transformer.cluster import ClusterTextCache, is_cluster_url
    from transformer.model import CachingTransformer
    from transformer.upstream import PredictorClient

    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.access_log)
    tracing.setup(f"{args.model_name}-transformer")
    if not args.predictor_host:
        sys.exit("transformer: --predictor_host (or PREDICTOR_HOST) is required, e.g. 127.0.0.1:8090")
    if args.predictor_protocol not in ("v2", "grpc-v2"):
        sys.exit("transformer: --predictor_protocol must be v2 or grpc-v2 (the predictor speaks V2)")
    cache_class = ClusterTextCache if args.redis_cluster or is_cluster_url(args.redis_url) else TextCache
    cache = cache_class(args.redis_url, args.model_name, ttl_s=args.cache_ttl_s, timeout_s=args.cache_timeout_ms / 1000,
                      failure_threshold=args.cache_failure_threshold, reset_after_s=args.cache_reset_s)
    predictor = PredictorClient(args.predictor_host, args.predictor_protocol,
                                timeout_s=args.predictor_request_timeout_seconds, use_ssl=args.predictor_use_ssl)
    model = CachingTransformer(args.model_name, predictor, cache, limits=limits_from(args),
                               pinned_version=args.cache_model_version)
    model.load()
    middlewares, interceptors = (), ()
    if args.rate_limit_rps > 0:
        from transformer.ratelimit import GrpcRateLimit, RateLimiter, RateLimitMiddleware

        limiter = RateLimiter(args.rate_limit_rps, args.rate_limit_burst, args.rate_limit_key)
        middlewares, interceptors = ((RateLimitMiddleware, {"limiter": limiter}),), (GrpcRateLimit(limiter),)
    serve(model, args, rest_middlewares=middlewares, grpc_interceptors=interceptors, predictor_config=PredictorConfig(
        predictor_host=args.predictor_host,
        predictor_protocol=args.predictor_protocol,
        predictor_use_ssl=args.predictor_use_ssl,
        predictor_request_timeout_seconds=args.predictor_request_timeout_seconds,
        predictor_health_check=args.enable_predictor_health_check,
    ))

if __name__ == "__main__":
    main()
