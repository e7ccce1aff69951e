"""The server runtime both services run in: KServe's servers with our errors, logs, metrics, limits and shutdown.

``contract/`` is what a client sees (shapes, errors, cache keys, the model face);
this package is how a process serves it. It imports nothing here: ``multiproc``
must be importable before ``prometheus_client``.
"""
