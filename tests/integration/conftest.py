import pytest

from tests.integration.servers import RedisProcess, ServerProcess, transformer_for


@pytest.fixture(scope="module")
def predictor(tiny_model_dir, tmp_path_factory):
    """The real predictor process serving the tiny sentiment model as "sentiment".

    On the fp32 ONNX backend: its scores do not depend on a text's batch mates, so
    tests can compare answers from different requests exactly. The int8 default is
    served by the bundled-model and --workers tests and bounded by test_backends.
    """
    log = tmp_path_factory.mktemp("logs") / "predictor.log"
    server = ServerProcess("predictor", ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir),
                                         "--backend", "onnx"], log)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    """A redis-server of the test module's own, on a free port."""
    server = RedisProcess(tmp_path_factory.mktemp("redis") / "redis.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def transformer(predictor, redis, tmp_path_factory):
    """The real transformer in front of this module's predictor and Redis, with default flags
    (a module needing other flags defines its own ``transformer``, which takes precedence)."""
    server = transformer_for(predictor, redis, tmp_path_factory.mktemp("logs") / "transformer.log").start()
    yield server
    server.stop()
