import pytest

from tests.integration.servers import ServerProcess


@pytest.fixture(scope="module")
def predictor(tiny_model_dir, tmp_path_factory):
    """The real predictor process serving the tiny sentiment model as "sentiment"."""
    log = tmp_path_factory.mktemp("logs") / "predictor.log"
    server = ServerProcess("predictor", ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir)], log)
    server.start()
    yield server
    server.stop()
