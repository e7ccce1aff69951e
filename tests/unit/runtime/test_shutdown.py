"""Readiness during the shutdown drain (runtime/shutdown.py): the probes flip, inference does not."""

import kserve
import pytest
from kserve.errors import ModelNotFound
from kserve.model_repository import ModelRepository

from runtime import shutdown
from runtime.kserve.dataplane import DataPlane


@pytest.fixture
def dataplane():
    registry = ModelRepository()
    model = kserve.Model("sentiment")
    model.ready = True
    registry.update(model)
    return DataPlane(model_registry=registry)


async def test_readiness_flips_while_inference_keeps_its_model(dataplane, monkeypatch):
    assert await dataplane.ready() and await dataplane.model_ready("sentiment")
    monkeypatch.setattr(shutdown, "_draining", True)
    assert not await dataplane.ready()
    assert not await dataplane.model_ready("sentiment")  # /v2/models/{name}/ready and gRPC ModelReady
    assert await dataplane.model_ready("sentiment", True)  # what KServe's inference routes ask
    with pytest.raises(ModelNotFound):
        await dataplane.model_ready("nope")


async def test_the_server_is_not_ready_while_a_model_says_it_is_not(dataplane):
    # KServe's own server readiness never looks at the models; a transformer refusing to serve
    # (its deadline not above the predictor's: transformer/model.py) must take its pod out of the endpoints.
    dataplane.model_registry.get_model("sentiment").ready = False
    assert not await dataplane.ready()


def test_worker_processes_learn_of_the_drain_from_the_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(shutdown, "_draining", False)
    monkeypatch.setattr(shutdown.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setenv(shutdown.MARKER_ENV, "")  # restored (unset) after the test
    marker = shutdown.share_with_workers()
    assert not shutdown.draining()
    shutdown.begin(2)  # in the parent
    monkeypatch.setattr(shutdown, "_draining", False)  # as a worker sees it: only the file
    assert marker.exists() and shutdown.draining()
