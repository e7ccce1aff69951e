"""Placeholders for packages that ``import kserve`` imports by name but a model server never uses.

The images install kserve with --no-deps (pyproject.toml says why): the
Kubernetes API client (126 MB) and pandas (79 MB) stay out. ``kserve/__init__.py``
still imports ``kserve.KServeClient`` (``from kubernetes import client, config``) and
``kserve.protocol.infer_type`` (``import pandas as pd``, for ``pd.DataFrame`` in
annotations), so a placeholder of each lets the import succeed while any real use fails
with a message naming the missing package. The images add this directory to sys.path
with a .pth file, which puts it after site-packages: a real package installed into the
image always wins.
"""

from __future__ import annotations

from types import ModuleType


def missing(package: str, attribute: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(
        f"{package}.{attribute}: {package} is not installed in this image (kserve is installed without it; "
        f"see pyproject.toml). Install {package} into the image to use this.",
        name=package,
    )


class AbsentModule(ModuleType):
    """``from kubernetes import client`` works; ``client.CoreV1Api()`` raises ModuleNotFoundError."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # import machinery and introspection probe dunders: plain AttributeError
            raise AttributeError(name)
        raise missing(self.__name__.split(".")[0], f"{self.__name__.partition('.')[2]}.{name}".lstrip("."))
