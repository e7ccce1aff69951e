"""Request parameters that change what is computed: ``truncation`` and explanations.

V1 bodies carry them in a ``parameters`` object next to ``instances``; V2 requests
(REST and gRPC) in the request's ``parameters``:

- ``truncation``: ``head`` | ``head_tail`` | ``chunks`` (default: the server's ``--truncation``)
- ``explain`` (V2 only; V1 has the ``:explain`` verb): true for an explanation per text
- ``granularity``: ``word`` (default) | ``token``, what an explanation attributes to

A known one with a wrong value is a 400 ``invalid_parameter`` that names the accepted
values. So is an unknown one, except the few that V2 clients add on their own
(``CLIENT_PARAMETERS``, with a scalar value): ignored parameters were a way to make a
server hold megabytes of JSON for a request's whole life (issue 26).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from contract.errors import ErrorType, ServiceError


class Truncation(StrEnum):
    """What the predictor does with a text longer than the model reads (docs/long-texts.md)."""

    HEAD = "head"  # its first max_length tokens: the plain, fastest path
    HEAD_TAIL = "head_tail"  # its head and its tail
    CHUNKS = "chunks"  # overlapping windows, scores combined


TRUNCATIONS = tuple(mode.value for mode in Truncation)  # plain strings: flags, Literal types, error messages
# The one default (both services' --truncation, the chart's values, the shadow's explicit choice).
DEFAULT_TRUNCATION: str = Truncation.HEAD.value
GRANULARITIES = ("word", "token")
KNOWN = ("truncation", "explain", "granularity")
# Set by V2 clients on their own (tritonclient: binary_data_output; Triton's protocol: priority, timeout).
CLIENT_PARAMETERS = ("binary_data_output", "priority", "timeout")
MAX_SCALAR_CHARS = 64


@dataclass(frozen=True)
class Options:
    truncation: str | None = None  # None: the server's default
    explain: bool = False
    granularity: str = "word"
    field_name: str = "instances"  # where the texts came from, for error messages (V2: the input's name)


NO_OPTIONS = Options()


def _choice(parameters: dict, name: str, choices: tuple[str, ...], where: str) -> str | None:
    value = parameters.get(name)
    if value is None:
        return None
    if value not in choices:
        raise ServiceError(
            ErrorType.INVALID_PARAMETER, f"{where}.{name} is {value!r}; use one of {', '.join(choices)}."
        )
    return value


def _flag(parameters: dict, name: str, where: str) -> bool:
    value = parameters.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ServiceError(ErrorType.INVALID_PARAMETER, f"{where}.{name} is {value!r}; use true or false.")


def parse_options(parameters: Any, where: str = "parameters", explain: bool = False) -> Options:
    """The options of a request's ``parameters`` (None or absent: the defaults). gRPC's map of
    InferParameter arrives as a plain dict (runtime/kserve/codec.py converts it)."""
    if not parameters:
        return Options(explain=True) if explain else NO_OPTIONS
    if not isinstance(parameters, dict):
        raise ServiceError(ErrorType.INVALID_PARAMETER, f"{where} must be an object of named parameters.")
    _check_names(parameters, where)
    return Options(
        truncation=_choice(parameters, "truncation", TRUNCATIONS, where),
        explain=explain or _flag(parameters, "explain", where),
        granularity=_choice(parameters, "granularity", GRANULARITIES, where) or "word",
    )



def _check_names(parameters: dict, where: str) -> None:
    unknown = [name for name in parameters if name not in KNOWN and name not in CLIENT_PARAMETERS]
    if unknown:
        shown = ", ".join(repr(str(name)[:MAX_SCALAR_CHARS]) for name in unknown[:3])
        raise ServiceError(ErrorType.INVALID_PARAMETER, f"{where} has {len(unknown)} unknown parameter(s) ({shown}); "
                                                        f"the parameters are {', '.join(KNOWN)}.")
    for name in CLIENT_PARAMETERS:
        value = parameters.get(name)
        if value is not None and not (isinstance(value, (bool, int, float))
                                      or (isinstance(value, str) and len(value) <= MAX_SCALAR_CHARS)):
            raise ServiceError(ErrorType.INVALID_PARAMETER,
                               f"{where}.{name} must be a boolean, a number or a short string.")
