"""``python -m predictor``: serve a Hugging Face text classifier with KServe.

All of KServe's standard flags apply (``--model_name``, ``--http_port``,
``--grpc_port``, ``--workers``, ...), plus the flags of predictor/settings.py; each of
ours can also be set by the env var named in its help.
"""

from __future__ import annotations

import sys

from runtime import multiproc

PROG = "python -m predictor"


def main(argv: list[str] | None = None) -> None:
    multiproc.enable()
    # Imported only now: Prometheus must be in multiprocess mode before kserve (and so
    # prometheus_client) is imported. See runtime/multiproc.py.
    from predictor.files import NotServable
    from predictor.model import PredictorModel
    from predictor.settings import PredictorSettings
    from predictor.share import ClientShare, GrpcClientShare
    from runtime import tracing
    from runtime.logs import configure_logging
    from runtime.server import serve
    from runtime.settings import parse

    settings, args = parse(PredictorSettings, PROG, __doc__, argv)
    configure_logging(settings.log_format, settings.access_log)
    tracing.setup(f"{settings.model_name}-predictor")
    model = PredictorModel(settings.model_name, settings)
    try:
        model.load()
    # NotServable: e.g. an unbaked storageUri model in the image without torch; the message says how to bake it.
    except (FileNotFoundError, NotServable) as exc:
        sys.exit(f"predictor: {exc}")
    # a client over its share of the queue is refused before its body (its gRPC message) is read (predictor/share.py)
    serve(model, settings, args, rest_middlewares=((ClientShare, {}),), grpc_interceptors=(GrpcClientShare(model),))


if __name__ == "__main__":
    main()
