"""Placeholder for pandas (see ../_absent.py): kserve names pd.DataFrame in annotations and isinstance checks only."""

from _absent import missing

__version__ = "0+absent"


class DataFrame:
    """A type, so that kserve's ``Union[np.ndarray, pd.DataFrame]`` and ``isinstance(x, pd.DataFrame)`` work; never built."""

    def __new__(cls, *args, **kwargs):
        raise missing("pandas", "DataFrame")


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise missing("pandas", name)
