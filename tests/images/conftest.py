"""The image tests' fixtures: the engine, the chart's rendered containers, a Redis, and the split pair running.

``make test-images`` builds the images first (scripts/images.sh); run alone, the tests
fail on a missing image with the command that builds it, and skip, saying why, only
where no container engine can run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.containers import Container, engine_name, image_bytes, predictor_container, rendered, transformer_container
from harness.processes import RedisProcess


@pytest.fixture(scope="session")
def engine() -> str:
    name = engine_name()
    if name is None:
        pytest.skip("no container engine can run here (neither `docker info` nor `podman info` works): "
                    "scripts/install-engine.sh installs podman and runc on Debian as root")
    return name


@pytest.fixture(scope="session")
def services(engine) -> dict[str, dict]:
    """The chart's InferenceServices (default values), their images as `make images` tags them."""
    found = rendered()
    for component in ("predictor", "transformer"):
        require_image(found["sentiment"]["spec"][component]["containers"][0]["image"])
    return found


def require_image(image: str) -> str:
    if image_bytes(image) is None:
        pytest.fail(f"image {image} is not built: run `make images`")
    return image


@pytest.fixture(scope="session")
def redis(tmp_path_factory):
    server = RedisProcess(tmp_path_factory.mktemp("redis") / "redis.log").start()
    yield server
    server.stop()


@dataclass
class Split:
    service: dict
    predictor: Container
    transformer: Container


@pytest.fixture(scope="module")
def split(services, redis):
    """The sentiment model as the chart deploys it by default: predictor and transformer, each its own pod."""
    service = services["sentiment"]
    predictor = predictor_container(service["spec"]["predictor"])
    transformer = None
    try:
        predictor.run().wait_ready()
        transformer = transformer_container(service["spec"]["transformer"], redis.url,
                                            f"127.0.0.1:{predictor.http_port}")
        transformer.run().wait_ready()
        yield Split(service, predictor, transformer)
    finally:
        for container in (transformer, predictor):
            if container:
                container.remove()
