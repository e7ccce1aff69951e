"""``python -m predictor``: serve a Hugging Face text classifier with KServe.

All of KServe's standard flags apply (``--model_name``, ``--http_port``,
``--grpc_port``, ``--workers``, ...), plus the flags below; each of ours can also be
set by the env var named in its help.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from contract import multiproc

logger = logging.getLogger("predictor")


def build_parser() -> argparse.ArgumentParser:
    # Imported here, not at the top: main() must switch Prometheus to multiprocess mode
    # before kserve (and so prometheus_client) is imported. See contract/multiproc.py.
    from contract.flags import add_limit_flags, add_logging_flags, env, service_parser
    from predictor.backends import BACKENDS, DEFAULT_BACKEND
    from predictor.bundle import default_cache_dir

    parser = service_parser("python -m predictor", __doc__)
    add = parser.add_argument
    add("--model_dir", type=Path, default=env("MODEL_DIR", None, Path),
        help="Hugging Face model directory or LoRA adapter directory [MODEL_DIR]; default: the model bundled "
             "under predictor/bundled/<model_name>. KServe's storage initializer puts a storageUri in /mnt/models.")
    add("--model_cache_dir", type=Path, default=env("MODEL_CACHE_DIR", default_cache_dir(), Path),
        help="Where merged adapters and exported ONNX graphs are cached [MODEL_CACHE_DIR].")
    add("--max_length", type=int, default=env("MAX_LENGTH", 512, int),
        help="Tokens per text; longer texts are truncated [MAX_LENGTH].")
    add("--max_batch_size", type=int, default=env("MAX_BATCH_SIZE", 32, int),
        help="Most texts one model call takes from the queue [MAX_BATCH_SIZE].")
    add("--max_batch_delay_ms", type=float, default=env("MAX_BATCH_DELAY_MS", 2.0, float),
        help="Longest wait for a batch to fill before it runs [MAX_BATCH_DELAY_MS].")
    add("--max_batch_tokens", type=int, default=env("MAX_BATCH_TOKENS", 16384, int),
        help="Padded tokens per forward pass; a batch is split to stay under it [MAX_BATCH_TOKENS].")
    add("--max_queue_texts", type=int, default=env("MAX_QUEUE_TEXTS", 10_000, int),
        help="Texts allowed to wait; beyond it requests get 429 overloaded [MAX_QUEUE_TEXTS].")
    add("--request_timeout_s", type=float, default=env("REQUEST_TIMEOUT_S", 10.0, float),
        help="Per-request deadline; past it the answer is 504 timeout [REQUEST_TIMEOUT_S].")
    add("--model_version", default=env("MODEL_VERSION", None),
        help="Version reported in responses and metadata [MODEL_VERSION]; default: a hash of the model files.")
    add("--backend", choices=BACKENDS, default=env("BACKEND", DEFAULT_BACKEND),
        help="Inference engine [BACKEND]: ONNX Runtime or PyTorch, fp32 or int8 weights (see BENCHMARKS.md).")
    add("--threads", type=int, default=env("INFERENCE_THREADS", 0, int),
        help="Intra-op threads for the backend; 0: its default, one per core [INFERENCE_THREADS].")
    add_limit_flags(parser)
    add_logging_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    multiproc.enable()
    from contract import tracing
    from contract.flags import configure_logging, limits_from
    from contract.server import serve
    from predictor.bundle import resolve_model_dir
    from predictor.model import PredictorOptions, TextClassifierModel

    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.access_log)
    tracing.setup(f"{args.model_name}-predictor")
    try:
        model_dir = resolve_model_dir(args.model_dir, args.model_name, args.model_cache_dir)
    except FileNotFoundError as exc:
        sys.exit(f"predictor: {exc}")
    options = PredictorOptions(
        model_dir=model_dir,
        max_length=args.max_length,
        max_batch_size=args.max_batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        max_batch_tokens=args.max_batch_tokens,
        max_queue_texts=args.max_queue_texts,
        request_timeout_s=args.request_timeout_s,
        model_version=args.model_version,
        backend=args.backend,
        threads=args.threads,
        cache_dir=args.model_cache_dir,
        limits=limits_from(args),
    )
    model = TextClassifierModel(args.model_name, options)
    model.load()
    serve(model, args)

if __name__ == "__main__":
    main()
