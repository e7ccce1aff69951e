"""Each image copies every package its entry point imports: images cannot be built in the unit run, so a
moved module would otherwise surface only as an ImportError in `make test-images`."""

import pytest

from tests.unit.test_imports import MODULES, ROOT, reachable

ENTRY_POINTS = [
    ("predictor.__main__", "predictor/Dockerfile"),  # the serving stages
    ("modelbuild.bake", "predictor/Dockerfile"),  # the build stage
    ("transformer.__main__", "transformer/Dockerfile"),
]


@pytest.mark.parametrize(("entry", "dockerfile"), ENTRY_POINTS)
def test_every_imported_package_is_copied_into_the_image(entry, dockerfile):
    folders = {MODULES[name].parent.relative_to(ROOT).as_posix() for name in reachable(entry) | {entry}}
    text = (ROOT / dockerfile).read_text()
    assert [folder for folder in sorted(folders) if f"COPY {folder}/*.py " not in text] == []


def test_training_never_reaches_an_image():
    for dockerfile in ("predictor/Dockerfile", "transformer/Dockerfile"):
        assert "COPY training" not in (ROOT / dockerfile).read_text()
