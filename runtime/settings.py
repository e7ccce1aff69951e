"""Every setting of ours declared once: flag, env var, default and help, as one typed pydantic-settings field.

MLServer's way (``mlserver.settings``): a ``BaseSettings`` class per service reads the
env vars; here it also generates the argparse flags on top of KServe's own parser,
and the README's flag tables (tests/unit/test_docs.py compares them). ``parse`` is
called by the ``__main__`` modules only; everything else receives a settings object
or an options object built from it (``limits()``, ``predictor_config()``, ...).

A field's env var is its name in capitals unless ``env=`` names another; the same name with
the service's prefix (``PREDICTOR_MAX_BATCH_SIZE``, ``TRANSFORMER_CACHE_TTL_S``) is read too
and wins, so that one environment (a shared ConfigMap, a collocated pod) can hold both
services' settings; today's unprefixed names stay as aliases.
``kserve=True`` marks one of KServe's own flags whose default (and env var) is ours:
such a field sets the default of KServe's flag instead of adding a flag.
"""

from __future__ import annotations

import argparse
import os
import typing
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.schema import Limits

S = TypeVar("S", bound="ServiceSettings")

# The two deadlines, in the one order that lets a client see why: the predictor's own 504 (``timeout``, from
# its batcher) must come before the transformer gives up on the call, or the two race and the client gets
# whichever fires first. The transformer's default is the predictor's plus a margin for the hop and a slow
# parse; the transformer checks the order against what the predictor publishes (transformer/model.py).
PREDICTOR_DEADLINE_S = 10  # --request_timeout_s
DEADLINE_MARGIN_S = 5
TRANSFORMER_DEADLINE_S = PREDICTOR_DEADLINE_S + DEADLINE_MARGIN_S  # --predictor_request_timeout_seconds


def deadline_order_problem(transformer_s: float, predictor_s: float) -> str | None:
    """Why the transformer must not serve in front of this predictor, or None when its deadline is the later."""
    if transformer_s > predictor_s:
        return None
    return (f"the transformer's --predictor_request_timeout_seconds ({transformer_s:g} s) must exceed the "
            f"predictor's --request_timeout_s ({predictor_s:g} s), or the two 504s race; set it to at least "
            f"{predictor_s + DEADLINE_MARGIN_S:g} s (or lower the predictor's)")


def setting(default: Any = None, help: str = "", *, env: str | None = None, shown: str | None = None,
            kserve: bool = False, factory=None) -> Any:
    """One declaration. ``shown``: the README's default column when the value itself would not say it."""
    extra = {"shown": shown, "kserve": kserve}
    if factory is not None:
        return Field(default_factory=factory, description=help, validation_alias=env, json_schema_extra=extra)
    return Field(default, description=help, validation_alias=env, json_schema_extra=extra)


class ServiceSettings(BaseSettings):
    """What both services take (besides KServe's server flags: ports, workers, ...)."""

    model_config = SettingsConfigDict(env_ignore_empty=True, validate_by_name=True, validate_by_alias=True,
                                      frozen=True)
    env_prefix_name: ClassVar[str] = ""  # e.g. "PREDICTOR_": PREDICTOR_<env var> beats <env var>

    model_name: str = setting("model", "The model's name in every route and answer.", kserve=True)
    # KServe's per-request latency line costs a log write per request (a syscall, which
    # is dear on sandboxed nodes); the same latencies are histograms on /metrics.
    enable_latency_logging: bool = setting(False, "KServe's per-request latency log line.", kserve=True)
    max_texts: int = setting(1000, "most texts in one request; more is a 400 `too_many_texts`")
    max_chars: int = setting(100_000, "most characters in one text; more is a 400 `text_too_long`")
    max_body_bytes: int = setting(8 * 1024 * 1024, "largest request body (REST) or message (gRPC); more is a 413")
    read_timeout_s: float = setting(
        30.0, "seconds a REST request may take to arrive, line, headers and body, from its first byte (or from "
              "the connection); slower is disconnected (slow clients, runtime/slowclients.py); on gRPC, the "
              "seconds a connection may take to send its HTTP/2 preface and SETTINGS (runtime/grpc.py)")
    # gRPC core's own connection bounds (runtime/grpc.py ``server_options`` says which channel arg each sets):
    # without them an idle or stalled HTTP/2 connection is held for ever (gRPC's defaults are infinite).
    grpc_connection_idle_s: float = setting(
        300.0, "gRPC: a connection with no RPC in flight for this long is closed (GOAWAY)")
    grpc_connection_age_s: float = setting(
        600.0, "gRPC: a connection older than this (give or take 10 percent) is asked to go (GOAWAY); clients reconnect")
    grpc_connection_age_grace_s: float = setting(
        30.0, "gRPC: RPCs still in flight on a connection asked to go get this long, then it is closed: with "
              "`--grpc_connection_age_s`, the bound on an RPC whose message never arrives")
    grpc_keepalive_s: float = setting(
        60.0, "gRPC: the server pings a connection with RPCs in flight every this many seconds and closes it "
              "when a ping is not answered within as long (a vanished or stalled peer)")
    grpc_max_concurrent_streams: int = setting(
        100, "gRPC: most RPCs in flight on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)")
    log_format: Literal["text", "json"] = setting(
        "text", "`text` (KServe's format) or `json`: one JSON object per line, every logger included; "
                "see \"Observability\"")
    access_log: bool = setting(
        True, "one log line per inference request; `false` skips it (the request metrics still count)")
    shutdown_drain_s: float = setting(
        0.0, "on SIGTERM, answer not-ready at once but keep serving this long before draining "
             "(see \"Graceful shutdown\")")

    def limits(self) -> Limits:
        return Limits(max_texts=self.max_texts, max_chars=self.max_chars, max_body_bytes=self.max_body_bytes)


def env_var(name: str, field) -> str:
    return field.validation_alias or name.upper()


def is_kserve_flag(field) -> bool:
    return bool((field.json_schema_extra or {}).get("kserve"))


def shown_default(field) -> str:
    """The README's default column: ``shown`` if given, else the value as a flag would spell it."""
    shown = (field.json_schema_extra or {}).get("shown")
    if shown is not None:
        return shown
    value = field.get_default(call_default_factory=True)
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`"
    return f"{value:g}" if isinstance(value, float) else str(value)


def own_fields(cls: type[ServiceSettings], base: type[ServiceSettings] | None = None) -> dict:
    """The flags ``cls`` adds to KServe's (those of ``base`` left out), in declaration order."""
    inherited = base.model_fields if base is not None else {}
    return {name: field for name, field in cls.model_fields.items()
            if name not in inherited and not is_kserve_flag(field)}


def flag_table(cls: type[ServiceSettings], base: type[ServiceSettings] | None = None) -> str:
    """The README's markdown table of ``own_fields(cls, base)``."""
    rows = ["| flag | env var | default | what it does |", "|---|---|---|---|"]
    rows += [f"| `--{name}` | `{env_var(name, field)}` | {shown_default(field)} | {field.description} |"
             for name, field in own_fields(cls, base).items()]
    return "\n".join(rows)


def _flag_type(annotation):
    adapter = TypeAdapter(annotation)

    def convert(text: str):
        return adapter.validate_strings(text)

    convert.__name__ = getattr(annotation, "__name__", "value")  # argparse names it in "invalid <type> value"
    return convert


def prefixed_env(cls: type[ServiceSettings]) -> dict[str, str]:
    """The settings given under the service's prefixed env var names (empty is unset, as for the others)."""
    if not cls.env_prefix_name:
        return {}
    found = {name: os.environ.get(cls.env_prefix_name + env_var(name, field)) for name, field in cls.model_fields.items()}
    return {name: value for name, value in found.items() if value}


def parser_for(cls: type[ServiceSettings], prog: str, description: str | None) -> argparse.ArgumentParser:
    """KServe's model-server parser plus a flag per field of ``cls``; defaults come from the env vars."""
    from runtime.kserve.codec import server_flags

    try:
        from_env = cls(**prefixed_env(cls))
    except ValidationError as exc:
        raise SystemExit(f"{prog}: an environment variable has an invalid value:\n{exc}") from None
    parser = argparse.ArgumentParser(prog=prog, parents=[server_flags()], description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for name, field in cls.model_fields.items():
        value = getattr(from_env, name)
        if is_kserve_flag(field):
            parser.set_defaults(**{name: value})
            continue
        choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is Literal else None
        parser.add_argument(f"--{name}", type=_flag_type(field.annotation), default=value, choices=choices,
                            help=f"{field.description} [{env_var(name, field)}]")
    return parser


def parse(cls: type[S], prog: str, description: str | None,
          argv: list[str] | None = None) -> tuple[S, argparse.Namespace]:
    """Flags over env vars over defaults: our settings, and the namespace with KServe's server flags."""
    parser = parser_for(cls, prog, description)
    args = parser.parse_args(argv)
    try:
        return cls(**{name: getattr(args, name) for name in cls.model_fields}), args
    except ValidationError as exc:
        parser.error(str(exc))

