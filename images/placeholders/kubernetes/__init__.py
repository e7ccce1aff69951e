"""Placeholder for the Kubernetes API client (see ../_absent.py): kserve.KServeClient imports it, serving never calls it."""

from _absent import AbsentModule

__version__ = "0+absent"


def __getattr__(name: str) -> AbsentModule:
    if name.startswith("__"):
        raise AttributeError(name)
    return AbsentModule(f"kubernetes.{name}")  # `from kubernetes import client, config, watch` at kserve's import
